// Runs the official MCP conformance server suite through mcp-proxy, three ways: `serve` in front
// of the stdio everything fixture; `serve -- mcp-proxy connect <native HTTP fixture>` (both
// directions chained); and `serve <native HTTP fixture URL>`. Each must score 39 passed, 0
// failed. (The native server scores 40, --baseline measures it: serve answers a quick lone request
// with one JSON body, which the spec allows, so server-sse-multiple-streams reports its
// "streams functional" check as INFO, "SSE streaming is optional", rather than as a pass.) Then the client suite
// through `connect` (scripts/conformance_client.ts): all 26 scenarios. `deno task conformance`.

import { cliCommand, fixtureCommand, fixturePath, startServe } from "../tests/support/cli.ts";
import { pumpLines } from "../src/lines.ts";
import { runClientSuite, SCENARIOS } from "./conformance_client.ts";

const SUITE = "npm:@modelcontextprotocol/conformance@0.1.16";
const EXPECTED_PASSED = 39;
const encoder = new TextEncoder();

function say(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text + "\n"));
}

interface Score {
  passed: number;
  failed: number;
  summary: string[];
}

/** Runs the suite against `url`; returns the pass/fail totals and the summary lines. */
async function runSuite(url: string): Promise<Score> {
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

/** The native Streamable HTTP fixture; stops when disposed. */
async function nativeServer(): Promise<{ url: string } & AsyncDisposable> {
  const native = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--allow-net=127.0.0.1", fixturePath("everything_http.ts"), "0"],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const url = await new Promise<string>((resolve, reject) => {
    void pumpLines(native.stdout, (line) => {
      const match = /^listening (\S+)/.exec(line);
      if (match) resolve(match[1]!);
    });
    native.status.then(() => reject(new Error("the native fixture exited")));
  });
  return {
    url,
    [Symbol.asyncDispose]: async () => {
      native.kill("SIGTERM");
      await native.status;
    },
  };
}

async function throughServe(
  label: string,
  flags: string[],
  command: string[] | undefined,
): Promise<Score> {
  await using proxy = await startServe(flags, command);
  const score = await runSuite(proxy.mcpUrl.href);
  if (score.failed > 0 || score.passed !== EXPECTED_PASSED) {
    for (const line of score.summary) if (!line.includes(" 0 failed")) say(`  ${line}`);
  }
  say(`${label}: ${score.passed} passed, ${score.failed} failed`);
  return score;
}

if (import.meta.main) {
  const started = performance.now();
  await using native = await nativeServer();
  const scores = [
    await throughServe("serve -- <stdio fixture>", [], fixtureCommand("everything_stdio.ts")),
    await throughServe("serve -- mcp-proxy connect <native HTTP>", [], [
      ...cliCommand(),
      "connect",
      native.url,
    ]),
    await throughServe("serve <native HTTP URL>", [native.url], undefined),
  ];
  if (Deno.args.includes("--baseline")) {
    const { passed, failed } = await runSuite(native.url);
    say(`native HTTP server: ${passed} passed, ${failed} failed`);
  }
  const client = await clientSuite();
  say(`(${Math.round((performance.now() - started) / 1000)} s)`);
  let failed = false;
  if (scores.some((s) => s.passed !== EXPECTED_PASSED || s.failed !== 0)) {
    say(`FAIL: expected ${EXPECTED_PASSED} passed, 0 failed every way`);
    failed = true;
  }
  if (!client) {
    say(`FAIL: expected all ${SCENARIOS.length} client scenarios to pass`);
    failed = true;
  }
  if (failed) Deno.exit(1);
}

/** The client suite through `connect`; true when every scenario passed. */
async function clientSuite(): Promise<boolean> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-proxy-conformance-" });
  const score = await runClientSuite(SUITE, dir);
  for (const line of score.lines) say(`  ${line}`);
  for (const problem of score.problems) say(`  problem: ${problem}`);
  say(
    `client suite through connect: ${score.passedScenarios}/${SCENARIOS.length} scenarios, ` +
      `${score.passedChecks} checks passed`,
  );
  const ok = score.problems.length === 0 && score.passedScenarios === SCENARIOS.length;
  if (ok) await Deno.remove(dir, { recursive: true });
  else say(`  (results kept in ${dir}/results; the command was: ${score.commandLine})`);
  return ok;
}
