// Our legacy HTTP+SSE client transport (src/upstream/sse_client.ts), through `connect
// --transport sse-only`, against hand-written servers: an endpoint on another origin is refused
// before anything is sent there, and events in CRLF framing with split data lines are read.

import assert from "node:assert/strict";
import { runCli } from "./support/cli.ts";
import { connectStdio, initializeJson, textOf } from "./support/client.ts";

const encoder = new TextEncoder();

interface Legacy extends AsyncDisposable {
  url: string;
  /** Requests seen, as "METHOD path". */
  seen: string[];
}

/** A legacy SSE server whose first event names `endpoint` (a path, or a URL elsewhere). */
function legacyServer(endpoint: (origin: string) => string): Legacy {
  const seen: string[] = [];
  let stream: ReadableStreamDefaultController<Uint8Array> | undefined;
  const send = (text: string) => stream?.enqueue(encoder.encode(text));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    seen.push(`${req.method} ${url.pathname}`);
    if (req.method === "GET") {
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          stream = controller;
          send(`event: endpoint\r\ndata: ${endpoint(url.origin)}\r\n\r\n`);
        },
      });
      return new Response(body, { headers: { "content-type": "text/event-stream" } });
    }
    const message = await req.json();
    if (message.method === "initialize") {
      const result = {
        protocolVersion: message.params.protocolVersion,
        capabilities: { tools: {} },
        serverInfo: { name: "legacy", version: "1" },
      };
      send(
        `event: message\r\ndata: ${
          JSON.stringify({ jsonrpc: "2.0", id: message.id, result })
        }\r\n\r\n`,
      );
    } else if (message.method === "tools/call") {
      // The answer's JSON over two data lines (joined with a line feed: still valid JSON).
      const answer = JSON.stringify({
        jsonrpc: "2.0",
        id: message.id,
        result: { content: [{ type: "text", text: "legacy ok" }] },
      }).replace(',"result"', ',\r\ndata: "result"');
      send(`: a comment\r\ndata: ${answer}\r\n\r\n`);
    }
    return new Response("Accepted", { status: 202 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/sse`,
    seen,
    async [Symbol.asyncDispose]() {
      try {
        stream?.close();
      } catch {
        // Closed by the client already.
      }
      await server.shutdown();
    },
  };
}

Deno.test("connect: legacy SSE events in CRLF framing, an answer over two data lines", async () => {
  await using server = legacyServer(() => "/messages?session=1");
  await using client = await connectStdio([server.url, "--transport", "sse-only"]);
  const result = await client.callTool({ name: "echo", arguments: {} });
  assert.equal(textOf(result), "legacy ok");
  assert.ok(server.seen.includes("POST /messages"), server.seen.join("\n"));
});

Deno.test("connect: an SSE endpoint on another origin is refused; nothing is sent there", async () => {
  await using elsewhere = legacyServer(() => "/never");
  const elsewhereOrigin = new URL(elsewhere.url).origin;
  await using server = legacyServer(() => `${elsewhereOrigin}/messages`);
  const result = await runCli(["connect", server.url, "--transport", "sse-only"], {
    stdin: initializeJson() + "\n",
  });
  assert.match(
    result.stderr,
    /SSE failed: the server named an endpoint on another origin \(http:\/\/127\.0\.0\.1:\d+\); messages go only to the server's own origin/,
  );
  assert.match(result.stdout, /"id":1,"error"/);
  assert.deepEqual(elsewhere.seen, [], "nothing reached the other origin");
});
