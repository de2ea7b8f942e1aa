// serve when things go wrong: a child that crashes mid-request, is noisy, slow, missing or
// stubborn, and shutdown by signal with no process left behind.

import assert from "node:assert/strict";
import { fixtureCommand, startServe } from "./support/cli.ts";
import { connectHttp, textOf } from "./support/client.ts";
import { health, waitFor } from "./support/wait.ts";

const faulty = (...flags: string[]) => fixtureCommand("faulty_stdio.ts", ...flags);

/** True while `pid` names a live (not zombie) process. */
async function alive(pid: number): Promise<boolean> {
  const { stdout } = await new Deno.Command("ps", { args: ["-o", "stat=", "-p", String(pid)] })
    .output();
  const stat = new TextDecoder().decode(stdout).trim();
  return stat !== "" && !stat.startsWith("Z");
}

Deno.test("serve: a child crashing mid-request answers the request with -32000 and exit code", async () => {
  await using proxy = await startServe([], faulty());
  const client = await connectHttp(proxy.mcpUrl);
  const { pid } = JSON.parse(textOf(await client.callTool({ name: "whoami", arguments: {} })));
  const error = await client.callTool({ name: "crash", arguments: { code: 3 } }).then(
    () => assert.fail("the call must fail"),
    (e: Error & { code?: number }) => e,
  );
  assert.equal(error.code, -32000);
  assert.match(error.message, /MCP server exited with code 3/);
  await proxy.waitForLine(/warn: MCP server \S+ \d+ exited with code 3/);
  // The session ended with its child; the next session gets a fresh one.
  await assert.rejects(client.callTool({ name: "whoami", arguments: {} }), /404|not found/i);
  await client.close();
  await using next = await connectHttp(proxy.mcpUrl);
  const fresh = JSON.parse(textOf(await next.callTool({ name: "whoami", arguments: {} })));
  assert.notEqual(fresh.pid, pid);
  assert.equal(fresh.calls, 1);
});

Deno.test("serve: noisy stdout is dropped and stderr is relayed line by line", async () => {
  await using proxy = await startServe(["--debug"], faulty("--noisy"));
  await using client = await connectHttp(proxy.mcpUrl);
  for (const text of ["one", "two", "three"]) {
    assert.equal(textOf(await client.callTool({ name: "echo", arguments: { text } })), text);
  }
  await proxy.waitForLine(/debug: dropped a non-JSON-RPC stdout line from \S+ \d+: echo called/);
  await proxy.waitForLine(/debug: dropped a non-JSON-RPC stdout line .*\{"not": "json-rpc"\}/);
  await proxy.waitForLine(/^\[deno \d+\] faulty server pid \d+ starting$/);
});

Deno.test("serve: a slow-starting child still answers initialize", async () => {
  await using proxy = await startServe([], faulty("--delay-ms", "1500"));
  const started = Date.now();
  await using client = await connectHttp(proxy.mcpUrl);
  assert.ok(Date.now() - started >= 1000, "initialize waited for the child");
  assert.equal(textOf(await client.callTool({ name: "echo", arguments: { text: "ok" } })), "ok");
});

Deno.test("serve: a command that cannot start gets a clear 502, and the server stays up", async () => {
  await using proxy = await startServe([], ["mcp-proxy-no-such-command", "--flag"]);
  const error = await connectHttp(proxy.mcpUrl).then(
    () => assert.fail("connect must fail"),
    (e: Error) => e,
  );
  assert.match(error.message, /cannot start \\?"mcp-proxy-no-such-command\\?": command not found/);
  await proxy.waitForLine(/error: cannot start "mcp-proxy-no-such-command": command not found/);
  assert.ok(!proxy.stderrText.includes("    at "), "no stack trace");
  const raw = await fetch(proxy.mcpUrl, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 7,
      method: "initialize",
      params: {
        protocolVersion: "2025-11-25",
        capabilities: {},
        clientInfo: { name: "t", version: "1" },
      },
    }),
  });
  assert.equal(raw.status, 502);
  const body = await raw.json();
  assert.equal(body.id, 7);
  assert.equal(body.error.code, -32000);
  assert.equal((await fetch(`${proxy.url}/health`)).status, 200);
});

Deno.test("serve: SIGTERM ends sessions, children and grandchildren, then exits 0", async () => {
  const proxy = await startServe([], [
    ...fixtureCommand("faulty_stdio.ts").slice(0, 3),
    "--allow-run=sleep",
    ...fixtureCommand("faulty_stdio.ts").slice(3),
  ]);
  const client = await connectHttp(proxy.mcpUrl);
  const { pid } = JSON.parse(textOf(await client.callTool({ name: "whoami", arguments: {} })));
  const grandchild = Number(
    textOf(await client.callTool({ name: "spawn_grandchild", arguments: {} })),
  );
  const pending = client.callTool({ name: "hang", arguments: {} }).then(
    () => "answered",
    (e: Error) => e.message,
  );
  assert.ok(await alive(pid) && await alive(grandchild));
  const status = await proxy.stop("SIGTERM");
  assert.equal(status.code, 0);
  await proxy.waitForLine(/shutting down/);
  assert.equal(await pending, "MCP error -32000: mcp-proxy is shutting down");
  await waitFor(async () => !(await alive(pid)) && !(await alive(grandchild)));
  await client.close();
});

Deno.test("serve: SIGINT exits 0; a child ignoring SIGTERM is killed after --shutdown-grace", async () => {
  const proxy = await startServe(["--shutdown-grace", "300ms"], faulty("--stubborn"));
  const client = await connectHttp(proxy.mcpUrl);
  const { pid } = JSON.parse(textOf(await client.callTool({ name: "whoami", arguments: {} })));
  const started = Date.now();
  const status = await proxy.stop("SIGINT");
  assert.equal(status.code, 0);
  assert.ok(Date.now() - started >= 250, "waited for the grace period");
  assert.ok(Date.now() - started < 10_000, "did not hang");
  await waitFor(async () => !(await alive(pid)));
  await client.close();
});

Deno.test("serve: /health counts children of live sessions only", async () => {
  await using proxy = await startServe([], faulty());
  assert.deepEqual(await health(proxy.url), {
    ...(await health(proxy.url)),
    children: 0,
    sessions: { streamable: 0, sse: 0 },
  });
  const client = await connectHttp(proxy.mcpUrl);
  await waitFor(async () => (await health(proxy.url)).children === 1);
  await client.callTool({ name: "crash", arguments: { code: 1 } }).catch(() => {});
  await waitFor(async () => (await health(proxy.url)).children === 0);
  await client.close();
});

Deno.test("serve: a session with a request in flight is busy, not idle", async () => {
  await using proxy = await startServe(["--session-timeout", "300ms"], faulty());
  await using client = await connectHttp(proxy.mcpUrl);
  const slept = await client.callTool({ name: "sleep", arguments: { ms: 1500 } });
  assert.equal(textOf(slept), "slept 1500 ms");
  assert.equal(
    textOf(await client.callTool({ name: "echo", arguments: { text: "still" } })),
    "still",
  );
});

Deno.test("serve: a child that exits on its own takes its grandchildren with it", async () => {
  const withSleep = faulty();
  withSleep.splice(3, 0, "--allow-run=sleep");
  await using proxy = await startServe([], withSleep);
  const client = await connectHttp(proxy.mcpUrl);
  const grandchild = Number(
    textOf(await client.callTool({ name: "spawn_grandchild", arguments: {} })),
  );
  assert.ok(await alive(grandchild));
  const started = Date.now();
  await assert.rejects(
    client.callTool({ name: "crash", arguments: { code: 4 } }),
    /exited with code 4/,
  );
  assert.ok(Date.now() - started < 2000, "the grandchild holding stdout did not delay the answer");
  await waitFor(async () => !(await alive(grandchild)));
  await client.close();
});

Deno.test("serve: a second signal during the shutdown grace kills children at once, exit 0", async () => {
  const proxy = await startServe(["--shutdown-grace", "20s"], faulty("--stubborn"));
  const client = await connectHttp(proxy.mcpUrl);
  const { pid } = JSON.parse(textOf(await client.callTool({ name: "whoami", arguments: {} })));
  const started = Date.now();
  proxy.process.kill("SIGTERM");
  await proxy.waitForLine(/shutting down/);
  await proxy.waitForLine(/ignoring SIGTERM/);
  proxy.process.kill("SIGTERM");
  const status = await proxy.process.status;
  assert.equal(status.code, 0);
  assert.ok(Date.now() - started < 10_000, "did not wait out the 20 s grace");
  await proxy.waitForLine(/stopping now: killing every MCP server process/);
  await waitFor(async () => !(await alive(pid)));
  await client.close();
});
