// serve <url>: a remote MCP server exposed over /mcp and /sse to local HTTP clients, each local
// session with its own remote session; and the tool filter, which applies in every serve mode.

import assert from "node:assert/strict";
import { fixtureCommand, startServe } from "./support/cli.ts";
import { connectHttp, connectSse, endSession, textOf } from "./support/client.ts";
import { checkCatalog, checkRoundTrips, ROUND_TRIP_CAPABILITIES } from "./support/features.ts";
import { startNative } from "./support/native.ts";
import { waitFor } from "./support/wait.ts";

Deno.test("serve <url>: the full feature set, over Streamable HTTP and SSE", async () => {
  await using server = await startNative("http");
  await using proxy = await startServe([server.url]);
  await proxy.waitForLine(new RegExp(`serving ${server.url.replaceAll(".", "\\.")}`));
  await using http = await connectHttp(proxy.mcpUrl, { capabilities: ROUND_TRIP_CAPABILITIES });
  await checkCatalog(http);
  await checkRoundTrips(http);
  await using sse = await connectSse(proxy.sseUrl, { capabilities: ROUND_TRIP_CAPABILITIES });
  await checkRoundTrips(sse);
});

Deno.test("serve <url>: each local session is its own remote session; DELETE ends both", async () => {
  await using server = await startNative("http");
  await using proxy = await startServe([server.url]);
  const a = await connectHttp(proxy.mcpUrl);
  const b = await connectHttp(proxy.mcpUrl);
  await Promise.all([a.ping(), b.ping()]);
  assert.equal((await server.stats()).sessions, 2);
  await endSession(a);
  await waitFor(async () => (await server.stats()).deletes === 1);
  assert.equal((await server.stats()).sessions, 1);
  await b.ping();
  await endSession(b);
  await waitFor(async () => (await server.stats()).sessions === 0);
});

Deno.test("serve <url>: falls back to SSE and sends --header values", async () => {
  await using server = await startNative("sse-404");
  await using proxy = await startServe(
    [server.url, "--header", "X-Team: ${MCP_TEST_TEAM}"],
    undefined,
    { env: { MCP_TEST_TEAM: "blue" } },
  );
  await using client = await connectHttp(proxy.mcpUrl);
  const result = await client.callTool({ name: "test_simple_text", arguments: {} });
  assert.equal(textOf(result), "This is a simple text response for testing.");
  await proxy.waitForLine(/over SSE, after Streamable HTTP failed: the POST was answered 404/);
});

Deno.test("serve: the tool filter applies to a stdio command too", async () => {
  await using proxy = await startServe(
    ["--ignore-tool", "crash", "--ignore-tool", "spawn_*"],
    fixtureCommand("faulty_stdio.ts"),
  );
  await using client = await connectHttp(proxy.mcpUrl);
  const names = (await client.listTools()).tools.map((tool) => tool.name);
  assert.ok(names.includes("echo"));
  assert.ok(!names.includes("crash") && !names.includes("spawn_grandchild"));
  const error = await client.callTool({ name: "crash", arguments: { code: 9 } }).then(
    () => assert.fail("a hidden tool must be refused"),
    (e: Error & { code?: number }) => e,
  );
  assert.equal(error.code, -32602);
  assert.match(error.message, /Unknown tool: crash/);
  // Refused by the proxy: the child never saw it, so it is still alive.
  assert.equal(
    textOf(await client.callTool({ name: "echo", arguments: { text: "alive" } })),
    "alive",
  );
});
