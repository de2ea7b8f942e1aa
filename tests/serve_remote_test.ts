// serve <url>: a remote MCP server exposed over /mcp and /sse to local HTTP clients, each local
// session with its own remote session; and the tool filter, which applies in every serve mode.

import assert from "node:assert/strict";
import { fixtureCommand, startServe } from "./support/cli.ts";
import { connectHttp, connectSse, endSession, textOf } from "./support/client.ts";
import { checkCatalog, checkRoundTrips, ROUND_TRIP_CAPABILITIES } from "./support/features.ts";
import { initializeAnswer, startNative } from "./support/native.ts";
import { RawSession } from "./support/raw_session.ts";
import { messageEvent, messageOf, parseSse } from "./support/sse.ts";
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

Deno.test("serve <url>: a server's request goes on the stream of the call it came with, not the newest", async () => {
  // The remote asks the client (roots/list) on the stream of call "a" once call "b" is in flight
  // too: the question belongs to "a", so the client must get it on a's stream.
  let bArrived!: () => void;
  const bIn = new Promise<void>((resolve) => (bArrived = resolve));
  let rootsAnswered!: () => void;
  const answered = new Promise<void>((resolve) => (rootsAnswered = resolve));
  let aAnswered!: () => void;
  const aDone = new Promise<void>((resolve) => (aAnswered = resolve));
  const stream = (events: (send: (message: unknown) => void) => Promise<void>) => {
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        await events((message) => controller.enqueue(messageEvent(message)));
        controller.close();
      },
    });
    return new Response(body, {
      headers: { "content-type": "text/event-stream", "mcp-session-id": "s1" },
    });
  };
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      if (req.method === "GET") return new Response(null, { status: 405 });
      if (req.method === "DELETE") return new Response(null, { status: 200 });
      const message = await req.json();
      if (message.method === "initialize") return initializeAnswer(message, "s1");
      if (!("method" in message)) rootsAnswered();
      if (message.id === undefined || !("method" in message)) {
        return new Response(null, { status: 202 });
      }
      const answer = { jsonrpc: "2.0", id: message.id, result: { content: [] } };
      if (message.params?.name === "a") {
        return stream(async (send) => {
          await bIn;
          send({ jsonrpc: "2.0", id: "q1", method: "roots/list" });
          await answered;
          send(answer);
          aAnswered();
        });
      }
      bArrived();
      return stream(async (send) => {
        await aDone;
        send(answer);
      });
    },
  );
  await using proxy = await startServe([`http://127.0.0.1:${server.addr.port}/mcp`]);
  const session = await RawSession.open(proxy.mcpUrl);
  const read = async (response: Response) => {
    const messages: Record<string, unknown>[] = [];
    for await (const event of parseSse(response.body!)) {
      const message = messageOf(event);
      if (!message) continue;
      messages.push(message);
      if (message.method === "roots/list") {
        const reply = await session.post({ jsonrpc: "2.0", id: message.id, result: { roots: [] } });
        await reply.body?.cancel();
      }
    }
    return messages;
  };
  // "a" is on its event stream (held no longer) before "b" is sent.
  const a = read(await session.post(RawSession.call("a", "a")));
  const b = read(await session.post(RawSession.call("b", "b")));
  const [onA, onB] = await Promise.all([a, b]);
  assert.deepEqual(onA.map((m) => m.method ?? m.id), ["roots/list", "a"]);
  assert.deepEqual(onB.map((m) => m.method ?? m.id), ["b"]);
  await session.delete();
});
