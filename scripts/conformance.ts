// Runs the official MCP conformance server suite through `mcp-proxy serve` in front of the stdio
// everything fixture, and (with --baseline) against the fixture's native HTTP server too.
// Exits 1 unless the proxy scores 40 passed, 0 failed. `deno task conformance`.

import { fixtureCommand, fixturePath, startServe } from "../tests/support/cli.ts";
import { pumpLines } from "../src/lines.ts";

const SUITE = "npm:@modelcontextprotocol/conformance@0.1.16";
const EXPECTED_PASSED = 40;
const encoder = new TextEncoder();

function say(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text + "\n"));
}

/** Runs the suite against `url`; returns the pass/fail totals and the summary lines. */
async function runSuite(
  url: string,
): Promise<{ passed: number; failed: number; summary: string[] }> {
  // A third-party tool: it gets what it needs (-A), without touching our config or lock file.
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "--no-config", "--no-lock", SUITE, "server", "--url", url],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  const summary = text.split("\n").filter((line) => /^[\u2713\u2717] |^Total:/.test(line));
  const total = /Total: (\d+) passed, (\d+) failed/.exec(text);
  if (!total) throw new Error(`the conformance suite printed no total:\n${text}`);
  return { passed: Number(total[1]), failed: Number(total[2]), summary };
}

async function baseline(): Promise<string> {
  const native = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--allow-net=127.0.0.1", fixturePath("everything_http.ts"), "0"],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let resolveUrl!: (url: string) => void;
  const listening = new Promise<string>((resolve) => (resolveUrl = resolve));
  void pumpLines(native.stdout, (line) => {
    const match = /^listening (\S+)/.exec(line);
    if (match) resolveUrl(match[1]!);
  });
  try {
    const { passed, failed } = await runSuite(await listening);
    return `native HTTP server: ${passed} passed, ${failed} failed`;
  } finally {
    native.kill("SIGTERM");
    await native.status;
  }
}

if (import.meta.main) {
  const started = performance.now();
  await using proxy = await startServe([], fixtureCommand("everything_stdio.ts"));
  const { passed, failed, summary } = await runSuite(proxy.mcpUrl.href);
  for (const line of summary) say(line);
  say(`through mcp-proxy serve: ${passed} passed, ${failed} failed`);
  if (Deno.args.includes("--baseline")) say(await baseline());
  say(`(${Math.round((performance.now() - started) / 1000)} s)`);
  if (passed !== EXPECTED_PASSED || failed !== 0) {
    say(`FAIL: expected ${EXPECTED_PASSED} passed, 0 failed`);
    Deno.exit(1);
  }
}
