// serve --prewarm N: spare children started ahead, taken by new sessions (which then do not wait
// for a cold start) and replaced; a spare that dies is replaced too; bad uses are usage errors.

import assert from "node:assert/strict";
import { fixtureCommand, runCli, startServe } from "./support/cli.ts";
import { connectHttp, endSession, initializeJson, POST_HEADERS, textOf } from "./support/client.ts";
import { alive, tempDir } from "./support/gateway.ts";
import { health, waitFor } from "./support/wait.ts";

const faulty = fixtureCommand("faulty_stdio.ts");

/** The pids of the processes whose parent is `pid`. */
async function childrenOf(pid: number): Promise<number[]> {
  const { stdout } = await new Deno.Command("ps", { args: ["-o", "pid=", "--ppid", String(pid)] })
    .output();
  return new TextDecoder().decode(stdout).split("\n").map((line) => line.trim()).filter(Boolean)
    .map(Number);
}

type Spares = { spares?: number; children: number };

Deno.test("serve --prewarm 2: sessions take spare children that were started ahead", async () => {
  await using proxy = await startServe(["--prewarm", "2"], faulty);
  const pid = proxy.process.pid;
  await waitFor(async () => {
    const state = await health(proxy.url) as unknown as Spares;
    return state.spares === 2 && state.children === 2;
  });
  const ahead = await childrenOf(pid);
  assert.equal(ahead.length, 2, `two spares: ${ahead}`);

  await using first = await connectHttp(proxy.mcpUrl);
  const whoami = JSON.parse(textOf(await first.callTool({ name: "whoami", arguments: {} })));
  assert.ok(ahead.includes(whoami.pid), `the session runs on a spare (${whoami.pid} in ${ahead})`);
  assert.equal(whoami.calls, 1, "a spare has served nobody before");
  // Replaced: two spares again, besides the session's child.
  await waitFor(async () => {
    const state = await health(proxy.url) as unknown as Spares;
    return state.spares === 2 && state.children === 3;
  });
  await using second = await connectHttp(proxy.mcpUrl);
  const other = JSON.parse(textOf(await second.callTool({ name: "whoami", arguments: {} })));
  assert.notEqual(other.pid, whoami.pid);
  assert.ok((await childrenOf(pid)).includes(other.pid));

  // A session's end kills its child only; the spares stay.
  await endSession(first);
  await waitFor(async () => (await health(proxy.url)).children === 3);
  assert.ok(!(await childrenOf(pid)).includes(whoami.pid));

  // A spare that dies before any session takes it is replaced.
  const spares = (await childrenOf(pid)).filter((child) => child !== other.pid);
  assert.equal(spares.length, 2);
  Deno.kill(spares[0]!, "SIGKILL");
  await waitFor(async () => {
    const now = await childrenOf(pid);
    const state = await health(proxy.url) as unknown as Spares;
    return !now.includes(spares[0]!) && now.length === 3 && state.spares === 2;
  });
  const third = await connectHttp(proxy.mcpUrl);
  await using _ = third;
  assert.equal(textOf(await third.callTool({ name: "echo", arguments: { text: "ok" } })), "ok");

  // Shutdown ends the spares too.
  const last = await childrenOf(pid);
  assert.equal(last.length, 4, "two sessions' children and two spares");
  await proxy.stop();
  for (const child of last) {
    await waitFor(async () => !(await alive(child)));
  }
});

Deno.test({
  name: "serve --prewarm: a spare that closed its stdout is not handed to a session",
  // A POSIX shell closes the first spare's stdout (Deno cannot close its own fd 1).
  ignore: Deno.build.os === "windows",
  async fn() {
    await using dir = await tempDir();
    // The first process to make the marker closes its stdout and lives on, deaf to SIGTERM: the
    // proxy ends it 1 s after its stdout closed, with SIGKILL after the 3 s shutdown grace (a
    // window of seconds for the checks below). The others serve.
    const script = 'if mkdir "$0" 2>/dev/null; then trap "" TERM; exec 1>&-; ' +
      'echo "stdout closed" >&2; exec sleep 30; fi; exec "$@"';
    const command = ["sh", "-c", script, `${dir.path}/closed`, ...faulty];
    await using proxy = await startServe(["--prewarm", "1"], command);
    await proxy.waitForLine(/stdout closed/);
    const [spare] = await childrenOf(proxy.process.pid);
    assert.ok(spare !== undefined, "the spare lives on");
    // Not ready any more, though alive until the proxy ends it after a grace period.
    await waitFor(async () => {
      const state = await health(proxy.url) as unknown as Spares;
      return state.spares === 0 && state.children === 1;
    });
    // Handed the dead spare, the session could not even initialize.
    await using session = await connectHttp(proxy.mcpUrl);
    const whoami = JSON.parse(textOf(await session.callTool({ name: "whoami", arguments: {} })));
    assert.equal(whoami.calls, 1, "a fresh child");
    // The dead spare is ended, and a working one takes its place.
    await waitFor(async () => !(await alive(spare)));
    await waitFor(async () => (await health(proxy.url) as unknown as Spares).spares === 1);
  },
});

Deno.test("serve --prewarm: a command that cannot start still gets its clear 502", async () => {
  await using proxy = await startServe(["--prewarm", "1"], ["mcp-proxy-no-such-command"]);
  const response = await fetch(proxy.mcpUrl, {
    method: "POST",
    headers: POST_HEADERS,
    body: initializeJson(),
  });
  assert.equal(response.status, 502);
  const body = await response.json();
  assert.match(body.error.message, /cannot start "mcp-proxy-no-such-command": command not found/);
  const state = await health(proxy.url) as unknown as Spares;
  assert.equal(state.spares, 0);
  assert.equal(state.children, 0);
});

Deno.test("serve --prewarm: bad counts and modes it does not apply to are usage errors", async (t) => {
  const cases: Array<[string, string[], RegExp]> = [
    [
      "not a number",
      ["--prewarm", "x", "--", "cmd"],
      /--prewarm must be a number of processes, 0-64 \(got "x"\)/,
    ],
    ["too many", ["--prewarm", "65", "--", "cmd"], /0-64 \(got "65"\)/],
    [
      "with --stateless",
      ["--prewarm", "1", "--stateless", "--", "cmd"],
      /does not apply with --stateless/,
    ],
    [
      "with a URL",
      ["--prewarm", "1", "https://mcp.example.com/mcp"],
      /applies when serve's upstream is a command/,
    ],
    ["with the demo", ["--prewarm", "1"], /applies when serve's upstream is a command/],
  ];
  for (const [name, args, message] of cases) {
    await t.step(name, async () => {
      const result = await runCli(["serve", ...args]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, message);
      assert.equal(result.stdout, "");
    });
  }
});
