// Runs the gateway (`mcp-proxy serve --config <file> --port 0`) as a subprocess under the build's
// permission flags and waits for its route lines; writes configs to temp files; reads the
// per-server /health report and waits on it (readiness, never sleeps).

import { cliCommand, fixtureCommand, fixturePath, ServeProcess } from "./cli.ts";
import { initializeJson, POST_HEADERS } from "./client.ts";
import { startListening } from "./listening.ts";
import { waitFor } from "./wait.ts";
// @ts-types="@modelcontextprotocol/sdk/types"
export { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

/** One server as /health reports it. */
export interface ServerStatus {
  state: "disabled" | "starting" | "ready" | "failed" | "stopped";
  reason?: string;
  restarts: number;
  required: boolean;
}

/** What the gateway's /health answers (with its HTTP status). */
export interface GatewayHealth {
  httpStatus: number;
  status: string;
  children: number;
  sessions: { streamable: number; sse: number };
  servers: Record<string, ServerStatus>;
}

/** A stdio server entry running a fixture with no permissions: command is the deno binary. */
export function stdioServer(
  fixture: string,
  ...args: string[]
): { command: string; args: string[] } {
  const [command, ...rest] = fixtureCommand(fixture, ...args);
  return { command: command!, args: rest };
}

/** A temp directory for config files; removed when disposed. */
export async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "mcp-proxy-gateway-" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}),
  };
}

/** Writes `config` (an object, as JSON; or text as is) to `<dir>/<name>`; returns the path. */
export async function writeConfig(
  dir: string,
  config: unknown,
  name = "servers.json",
): Promise<string> {
  const path = `${dir}/${name}`;
  const text = typeof config === "string" ? config : JSON.stringify(config, null, 2);
  await Deno.writeTextFile(path, text);
  return path;
}

/** A running gateway: `url` is its base, `mcpUrl`/`sseUrl` the merged route. */
export class GatewayProcess extends ServeProcess {
  /** /<name>/mcp (Streamable HTTP) or /<name>/sse (legacy SSE). */
  route(name: string, kind: "mcp" | "sse" = "mcp"): URL {
    return new URL(`${this.url}/${name}/${kind}`);
  }

  async health(): Promise<GatewayHealth> {
    const response = await fetch(`${this.url}/health`);
    return { httpStatus: response.status, ...await response.json() };
  }

  /** Waits until /health reports each of `names` in `state` (and `also` holds for it). */
  async waitState(
    names: readonly string[],
    state: ServerStatus["state"] = "ready",
    also: (status: ServerStatus) => boolean = () => true,
    timeoutMs = 30_000,
  ): Promise<GatewayHealth> {
    let last: GatewayHealth | undefined;
    try {
      await waitFor(async () => {
        last = await this.health();
        return names.every((name) => {
          const status = last!.servers[name];
          return status?.state === state && also(status);
        });
      }, timeoutMs);
    } catch (error) {
      throw new Error(
        `${names.join(", ")} not ${state}: ${JSON.stringify(last?.servers)}\n${this.stderrText}`,
        { cause: error },
      );
    }
    return last!;
  }

  /** How many stderr lines so far match `pattern`. */
  count(pattern: RegExp): number {
    return this.stderr.filter((line) => pattern.test(line)).length;
  }

  /** Waits until at least `n` stderr lines match `pattern`. */
  async waitForCount(pattern: RegExp, n: number, timeoutMs = 30_000): Promise<void> {
    try {
      await waitFor(() => Promise.resolve(this.count(pattern) >= n), timeoutMs);
    } catch (error) {
      throw new Error(`fewer than ${n} lines matched ${pattern}:\n${this.stderrText}`, {
        cause: error,
      });
    }
  }

  /** Sends SIGHUP and waits for the reload's outcome line; returns it. */
  async reload(): Promise<string> {
    const outcome = /config reloaded: |reload refused, /;
    const before = this.count(outcome);
    this.process.kill("SIGHUP");
    await this.waitForCount(outcome, before + 1);
    return this.stderr.filter((line) => outcome.test(line))[before]!;
  }
}

const ROUTE_LINE = /^\[mcp-proxy\] [A-Za-z0-9_-]+: (http:\/\/[^/\s]+)\/\S*mcp(?: \(disabled\))?$/;

/**
 * Starts `mcp-proxy serve --config <config> --port 0 <flags>` and waits for its first route line
 * ("merged: <url>/mcp" or "<name>: <url>/<name>/mcp"); the members may still be starting.
 */
export async function startGateway(
  config: string,
  flags: readonly string[] = [],
  options: { env?: Record<string, string> } = {},
): Promise<GatewayProcess> {
  const [exe, ...prefix] = cliCommand();
  const child = new Deno.Command(exe!, {
    args: [...prefix, "serve", "--config", config, "--port", "0", ...flags],
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const gateway = new GatewayProcess(child);
  try {
    const [, url] = await gateway.waitForLine(ROUTE_LINE);
    gateway.url = url!;
  } catch (error) {
    await gateway.stop("SIGKILL");
    throw error;
  }
  return gateway;
}

/** True while `pid` names a live (not zombie) process. */
export async function alive(pid: number): Promise<boolean> {
  const { stdout } = await new Deno.Command("ps", { args: ["-o", "stat=", "-p", String(pid)] })
    .output();
  const stat = new TextDecoder().decode(stdout).trim();
  return stat !== "" && !stat.startsWith("Z");
}

/** The error a promise rejects with (fails if it resolves). */
export async function rejection(
  promise: Promise<unknown>,
  what = "the call",
): Promise<Error & { code?: number }> {
  let result: unknown;
  try {
    result = await promise;
  } catch (error) {
    return error as Error & { code?: number };
  }
  throw new Error(`expected ${what} to fail, got ${JSON.stringify(result).slice(0, 300)}`);
}

/** A POST of an initialize request to `url` by hand, for status codes (401, 404, 502). */
export async function rawInitialize(
  url: URL,
  headers: Record<string, string> = {},
): Promise<Response> {
  return await fetch(url, {
    method: "POST",
    headers: { ...POST_HEADERS, ...headers },
    body: initializeJson(),
  });
}

/** The everything fixture over Streamable HTTP on 127.0.0.1:`port` (0 picks one); disposable. */
export async function startRemote(
  port = 0,
): Promise<{ url: string; port: number; kill(): Promise<void> } & AsyncDisposable> {
  const args = ["run", "--no-prompt", "--allow-net=127.0.0.1", fixturePath("everything_http.ts")];
  const { url, kill } = await startListening([...args, String(port)], "the remote fixture");
  return { url, port: Number(new URL(url).port), kill, [Symbol.asyncDispose]: kill };
}
