// Our Streamable HTTP client transport (src/upstream/streamable_client.ts), through `connect`,
// against a hand-written server that answers in every way the specification allows (and a few it
// does not): JSON bodies and arrays, events split over CRLF data lines, answers on the GET stream
// after a 202, redirects within its origin, invalid events, and a stream that ends unanswered.

import assert from "node:assert/strict";
import { connectStdio, textOf } from "./support/client.ts";
import { LoggingMessageNotificationSchema } from "./support/sdk.ts";
import { waitFor } from "./support/wait.ts";

interface Message {
  jsonrpc: "2.0";
  id?: string | number;
  method?: string;
  params?: { name?: string; protocolVersion?: string };
}

const encoder = new TextEncoder();
const SESSION = "quirky-session";

/** A minimal MCP server, each tool answered in its own way; disposable. */
class QuirkyServer implements AsyncDisposable {
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  #get?: ReadableStreamDefaultController<Uint8Array>;
  #getOpened = Promise.withResolvers<void>();
  /** The requests the server saw, as "METHOD path [rpc method]". */
  readonly seen: string[] = [];
  /** When each GET for the session's own stream came (performance.now()). */
  readonly gets: number[] = [];
  /** Answers the n-th GET for the session's own stream (from 1) instead of a stream kept open. */
  getReply?: (n: number) => Response | undefined;
  /** Resumptions of the "polled" tool's stream that brought nothing new, before its answer. */
  polls = 0;
  #polled?: string | number;

  constructor() {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (req) => this.#handle(req),
    );
  }

  url(path = "/mcp"): string {
    return `http://127.0.0.1:${this.#server.addr.port}${path}`;
  }

  async #handle(req: Request): Promise<Response> {
    const { pathname } = new URL(req.url);
    const body = req.method === "POST" ? await req.json() as Message : undefined;
    this.seen.push(`${req.method} ${pathname}${body?.method ? ` ${body.method}` : ""}`);
    if (pathname === "/moved") {
      return new Response(null, { status: 307, headers: { location: "/mcp" } });
    }
    if (req.method === "DELETE") return new Response(null, { status: 200 });
    if (req.method === "GET" && req.headers.get("last-event-id") === "p0") {
      // The "polled" tool's stream, resumed: empty (ended to be polled again) 150 times, then
      // the answer. More than the client's 100 reconnection attempts.
      if (++this.polls <= 150) return sse("");
      const result = {
        content: [{ type: "text", text: `answered after ${this.polls - 1} polls` }],
      };
      return sse(
        `id: p1\ndata: ${JSON.stringify({ jsonrpc: "2.0", id: this.#polled, result })}\n\n`,
      );
    }
    if (req.method === "GET") {
      this.gets.push(performance.now());
      const reply = this.getReply?.(this.gets.length);
      if (reply) return reply;
      const stream = new ReadableStream<Uint8Array>({ start: (c) => void (this.#get = c) });
      this.#getOpened.resolve();
      return sse(stream);
    }
    const message = body!;
    if (message.id === undefined) return new Response(null, { status: 202 });
    if (message.method === "initialize") {
      return json({
        jsonrpc: "2.0",
        id: message.id,
        result: {
          protocolVersion: message.params?.protocolVersion,
          capabilities: { tools: {}, logging: {} },
          serverInfo: { name: "quirky", version: "1" },
        },
      });
    }
    if (message.method === "tools/list") {
      const tools = ["crlf", "json_array", "via_get", "bad_event", "cut", "not_jsonrpc", "polled"]
        .map((
          name,
        ) => ({
          name,
          inputSchema: { type: "object" },
        }));
      return json({ jsonrpc: "2.0", id: message.id, result: { tools } });
    }
    const answer = (text: string) =>
      JSON.stringify({
        jsonrpc: "2.0",
        id: message.id,
        result: { content: [{ type: "text", text }] },
      });
    const log = JSON.stringify({
      jsonrpc: "2.0",
      method: "notifications/message",
      params: { level: "info", data: "before the answer" },
    });
    switch (message.params?.name) {
      case "crlf": {
        // The answer's JSON split over two data lines, CRLF line ends, a comment first.
        const text = answer("crlf ok");
        const cut = text.indexOf(",");
        return sse(
          `: hello\r\nevent: message\r\ndata: ${text.slice(0, cut + 1)}\r\n` +
            `data: ${text.slice(cut + 1)}\r\n\r\n`,
        );
      }
      case "json_array":
        return new Response(`[${log},${answer("array ok")}]`, {
          headers: { "content-type": "application/json; charset=utf-8" },
        });
      case "via_get":
        // Accepted here, answered on the session's GET stream.
        await this.#getOpened.promise;
        setTimeout(() => this.#get?.enqueue(encoder.encode(`data: ${answer("get ok")}\n\n`)), 10);
        return new Response(null, { status: 202 });
      case "bad_event":
        return sse(`data: {not json\n\ndata: {"jsonrpc":"1.0"}\n\ndata: ${answer("still ok")}\n\n`);
      case "not_jsonrpc":
        // Shaped like the answer, but not a JSON-RPC message (no "jsonrpc": "2.0").
        return json({ id: message.id, result: { content: [] } });
      case "polled":
        // A priming event with an id and a short retry, then the stream ends: poll for the answer.
        this.#polled = message.id;
        return sse("id: p0\nretry: 5\ndata: \n\n");
      case "cut":
        // A progress-like notification, then the stream ends: no answer, no event id to resume.
        return sse(`data: ${log}\n\n`);
    }
    return json({ jsonrpc: "2.0", id: message.id, error: { code: -32602, message: "no tool" } });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#get?.close();
    } catch {
      // Already closed by the client.
    }
    await this.#server.shutdown();
  }
}

function json(message: unknown): Response {
  return Response.json(message, { headers: { "mcp-session-id": SESSION } });
}

function sse(body: string | ReadableStream<Uint8Array>): Response {
  return new Response(typeof body === "string" ? encoder.encode(body) : body, {
    headers: { "content-type": "text/event-stream", "mcp-session-id": SESSION },
  });
}

const call = (name: string) => ({ name, arguments: {} });

Deno.test("connect: our client reads every answer form a server may choose", async (t) => {
  await using server = new QuirkyServer();
  await using client = await connectStdio([server.url(), "--timeout", "30s"]);
  const logs: string[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    logs.push(String(n.params.data));
  });

  await t.step("an answer split over CRLF data lines, after a comment", async () => {
    assert.equal(textOf(await client.callTool(call("crlf"))), "crlf ok");
  });
  await t.step("a JSON array: the notification, then the answer", async () => {
    assert.equal(textOf(await client.callTool(call("json_array"))), "array ok");
    assert.deepEqual(logs, ["before the answer"]);
  });
  await t.step("a 202 for a request, answered on the GET stream", async () => {
    assert.equal(textOf(await client.callTool(call("via_get"))), "get ok");
  });
  await t.step("invalid events are skipped; the answer after them arrives", async () => {
    assert.equal(textOf(await client.callTool(call("bad_event"))), "still ok");
  });
  await t.step("a stream that ends unanswered: an error at once, not at --timeout", async () => {
    const started = performance.now();
    const error = await client.callTool(call("cut")).then(() => undefined, (e: Error) => e);
    assert.match(
      String(error?.message),
      /the server ended the response stream without answering; retry the request/,
    );
    assert.ok(performance.now() - started < 5000, "answered long before --timeout (30 s)");
    // The session goes on.
    assert.equal(textOf(await client.callTool(call("crlf"))), "crlf ok");
  });
  await t.step(
    "a JSON answer that is not JSON-RPC: an error at once, not at --timeout",
    async () => {
      const started = performance.now();
      const error = await client.callTool(call("not_jsonrpc")).then(() => undefined, (e) => e);
      assert.match(String(error?.message), /the server's JSON answer did not answer it/);
      assert.ok(performance.now() - started < 5000, "answered long before --timeout (30 s)");
    },
  );
  assert.ok(!client.stderr.some((line) => /error/i.test(line) && /crlf|array/.test(line)));
});

Deno.test("connect: a 307 within the server's origin is followed, method and body kept", async () => {
  await using server = new QuirkyServer();
  await using client = await connectStdio([server.url("/moved")]);
  assert.equal(textOf(await client.callTool(call("crlf"))), "crlf ok");
  assert.ok(server.seen.includes("POST /moved tools/call"), server.seen.join("\n"));
  assert.ok(server.seen.includes("POST /mcp tools/call"), server.seen.join("\n"));
});

Deno.test("connect: a request stream the server ends to be polled is resumed until its answer", async () => {
  await using server = new QuirkyServer();
  await using client = await connectStdio([server.url(), "--timeout", "30s"]);
  const result = await client.callTool(call("polled"));
  assert.equal(textOf(result), "answered after 150 polls");
});

Deno.test("connect: the GET stream is retried after a transient refusal and backs off when ended at once", async () => {
  await using server = new QuirkyServer();
  // 1: 409 (say, a replica not yet in sync); 2: a stream ended at once with nothing in it;
  // 3: the stream the server sends its own messages on.
  let live: ReadableStreamDefaultController<Uint8Array> | undefined;
  server.getReply = (n) => {
    if (n === 1) return new Response("not in sync yet", { status: 409 });
    if (n === 2) return sse("");
    return sse(new ReadableStream({ start: (c) => void (live = c) }));
  };
  await using client = await connectStdio([server.url(), "--timeout", "30s"]);
  const logs: string[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    logs.push(String(n.params.data));
  });
  await waitFor(() => Promise.resolve(live !== undefined));
  const note = {
    jsonrpc: "2.0",
    method: "notifications/message",
    params: { level: "info", data: "hi" },
  };
  live!.enqueue(encoder.encode(`data: ${JSON.stringify(note)}\n\n`));
  await waitFor(() => Promise.resolve(logs.length > 0));
  assert.deepEqual(logs, ["hi"]);
  // The empty stream was reopened later than the refused GET was (backoff), not at a fixed pace.
  const [first, second, third] = server.gets as [number, number, number];
  assert.ok(third - second > (second - first) * 1.3, server.gets.join(", "));
  live!.close();
});

Deno.test("connect: a GET stream ended at once with retry: 0 is not reopened in a busy loop", async () => {
  await using server = new QuirkyServer();
  // Each GET: a priming event (an id, no data) with retry: 0, and the end.
  server.getReply = () => sse("retry: 0\nid: g\ndata: \n\n");
  await using _client = await connectStdio([server.url(), "--timeout", "30s"]);
  await waitFor(() => Promise.resolve(server.gets.length >= 3));
  const [first, second, third] = server.gets as [number, number, number];
  // Honored as far as it can be: at most one reopening a second while the stream brings nothing.
  assert.ok(second - first >= 900 && third - second >= 900, server.gets.join(", "));
});

Deno.test("connect: a GET stream refused for good is a warning with the server's reason", async () => {
  await using server = new QuirkyServer();
  server.getReply = () => new Response("sessions are pinned to another node", { status: 403 });
  await using client = await connectStdio([server.url(), "--timeout", "30s"]);
  await waitFor(() => Promise.resolve(client.stderr.some((line) => /warn: /.test(line))));
  const warning = client.stderr.find((line) => /warn: /.test(line))!;
  assert.match(
    warning,
    /the GET was answered 403 Forbidden: sessions are pinned to another node; the server's own messages will not arrive/,
  );
  // Requests still work over POST, and the GET was not tried again.
  assert.equal(textOf(await client.callTool(call("crlf"))), "crlf ok");
  assert.equal(server.gets.length, 1);
});
