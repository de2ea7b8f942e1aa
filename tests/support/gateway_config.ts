// Helpers for the gateway config tests: a fixed environment, parsing with a source name, the
// exact problem lines of a ConfigError, and building config text from objects.

import assert from "node:assert/strict";
import { UsageError } from "../../src/errors.ts";
import { ConfigError, type GatewayConfig, parseConfig } from "../../src/gateway/config.ts";

const ENV: Record<string, string> = { TOKEN: "s3cret-token", BASE: "https://api.example.com" };
export const env = (name: string): string | undefined => ENV[name];

export function parse(text: string, allowHttp = false): GatewayConfig {
  return parseConfig(text, "servers.json", env, { allowHttp });
}

/** The problems parseConfig reports for `text` (it must throw a ConfigError). */
export function problemsOf(text: string): string[] {
  try {
    parse(text);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `not a ConfigError: ${error}`);
    assert.ok(error instanceof UsageError);
    const [head, ...lines] = error.message.split("\n");
    const count = error.problems.length;
    assert.equal(head, `servers.json: ${count} problem${count === 1 ? "" : "s"}`);
    assert.deepEqual(lines, error.problems);
    return error.problems;
  }
  assert.fail(`no ConfigError for ${text}`);
}

/** A config with these servers (and mcpProxy, when given). */
export function config(servers: Record<string, unknown>, mcpProxy?: unknown): string {
  return JSON.stringify(
    mcpProxy === undefined ? { mcpServers: servers } : { mcpProxy, mcpServers: servers },
  );
}
