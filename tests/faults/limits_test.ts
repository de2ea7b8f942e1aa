// Load limits and restarts: --max-sessions under 500 concurrent sessions (503 beyond it, no crash,
// nothing lost), and --restart bringing a crashed shared server back without waiting for a request.

import assert from "node:assert/strict";
import { fixtureCommand, runCli, startServe } from "../support/cli.ts";
import {
  connectHttp,
  endSession,
  initializeJson,
  POST_HEADERS,
  textOf,
} from "../support/client.ts";
import { report, rssMb } from "../support/report.ts";
import { health, waitFor } from "../support/wait.ts";

const INIT = initializeJson();
const HEADERS = POST_HEADERS;

Deno.test("faults: 500 concurrent sessions against --max-sessions 400: 400 open, 100 get 503", async () => {
  // The built-in demo server: sessions without children, so 500 fit in a test.
  await using proxy = await startServe(["--max-sessions", "400"]);
  const answers = await Promise.all(Array.from({ length: 500 }, async () => {
    const response = await fetch(proxy.mcpUrl, { method: "POST", headers: HEADERS, body: INIT });
    const session = response.headers.get("mcp-session-id");
    const retry = response.headers.get("retry-after");
    const body = await response.text();
    return { status: response.status, session, retry, body };
  }));
  const opened = answers.filter((answer) => answer.status === 200);
  const refused = answers.filter((answer) => answer.status === 503);
  assert.equal(opened.length, 400);
  assert.equal(refused.length, 100, JSON.stringify(answers.find((a) => a.status !== 200)));
  assert.ok(opened.every((answer) => answer.session && answer.body.includes('"result"')));
  for (const answer of refused) {
    assert.equal(answer.retry, "1");
    assert.match(
      JSON.parse(answer.body).error.message,
      /^Service Unavailable: 400 sessions are open, the most --max-sessions allows/,
    );
  }
  const state = await health(proxy.url);
  assert.equal(state.status, "ok");
  assert.equal(state.sessions.streamable, 400);
  await report({
    case: "500 concurrent sessions, --max-sessions 400",
    sessions: 400,
    requests: 500,
    lost: answers.filter((answer) => answer.status !== 200 && answer.status !== 503).length,
    peakRssMb: await rssMb(proxy.process.pid),
  });

  // Legacy SSE counts against the same limit.
  const sse = await fetch(proxy.sseUrl);
  assert.equal(sse.status, 503);
  await sse.body?.cancel();

  // Ending one makes room for one.
  const gone = await fetch(proxy.mcpUrl, {
    method: "DELETE",
    headers: { "mcp-session-id": opened[0]!.session!, "mcp-protocol-version": "2025-11-25" },
  });
  assert.equal(gone.status, 200);
  await gone.body?.cancel();
  await using client = await connectHttp(proxy.mcpUrl);
  assert.ok((await client.listTools()).tools.length > 0);
  const again = await fetch(proxy.mcpUrl, { method: "POST", headers: HEADERS, body: INIT });
  assert.equal(again.status, 503);
  await again.body?.cancel();
});

Deno.test("faults: --max-sessions counts sessions still opening (children starting)", async () => {
  await using proxy = await startServe(["--max-sessions", "3"], fixtureCommand("faulty_stdio.ts"));
  const statuses = await Promise.all(Array.from({ length: 8 }, async () => {
    const response = await fetch(proxy.mcpUrl, { method: "POST", headers: HEADERS, body: INIT });
    await response.body?.cancel();
    return response.status;
  }));
  assert.deepEqual(statuses.toSorted(), [200, 200, 200, 503, 503, 503, 503, 503]);
  await waitFor(async () => (await health(proxy.url)).children === 3);
  assert.equal((await health(proxy.url)).sessions.streamable, 3);
});

Deno.test("faults: --stateless --restart starts a crashed server again, with no request needed", async () => {
  await using proxy = await startServe(
    ["--stateless", "--restart"],
    fixtureCommand("faulty_stdio.ts"),
  );
  type Shared = { server?: { running: boolean; restarts?: number; restarting?: boolean } };
  const shared = async () => (await health(proxy.url) as unknown as Shared).server!;
  await waitFor(async () => (await shared()).running);
  assert.deepEqual(await shared(), {
    running: true,
    startFailed: false,
    restarts: 0,
    restarting: false,
  });
  await using client = await connectHttp(proxy.mcpUrl);
  const before = JSON.parse(textOf(await client.callTool({ name: "whoami", arguments: {} })));

  const crash = await client.callTool({ name: "crash", arguments: { code: 5 } }).then(
    () => undefined,
    (error: Error) => error,
  );
  assert.match(String(crash?.message), /MCP server exited with code 5/);
  await proxy.waitForLine(/shared MCP server exited with code 5; restarting it in 1s$/);
  await waitFor(async () => {
    const state = await shared();
    return state.running && state.restarts === 1 && !state.restarting;
  });
  await proxy.waitForLine(/the shared MCP server is running again$/);
  await report({ case: "stateless server crash with --restart", faults: 1, requests: 3, lost: 0 });
  const after = JSON.parse(textOf(await client.callTool({ name: "whoami", arguments: {} })));
  assert.notEqual(after.pid, before.pid);
  await endSession(client);
});

Deno.test("faults: --restart and --max-sessions usage errors", async (t) => {
  const cases: Array<[string, string[], RegExp]> = [
    [
      "--restart without --stateless",
      ["--restart", "--", "cmd"],
      /--restart applies with --stateless/,
    ],
    [
      "--max-sessions not a number",
      ["--max-sessions", "many", "--", "cmd"],
      /--max-sessions must be a whole number, 0-1000000 \(got "many"\)/,
    ],
    ["--max-sessions negative", ["--max-sessions", "-1", "--", "cmd"], /--max-sessions/],
  ];
  for (const [name, args, message] of cases) {
    await t.step(name, async () => {
      const result = await runCli(["serve", ...args]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, message);
    });
  }
});
