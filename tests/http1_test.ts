// Our HTTP/1.1 client for plain-http remote servers (src/upstream/http1.ts), against hand-written
// servers on 127.0.0.1 that answer byte by byte as a test needs: sized, chunked, empty and
// close-delimited bodies, 1xx answers, kept and closed connections, bodies let go early, aborts,
// and answers that are not HTTP.

import assert from "node:assert/strict";
import { ConnectError, http1Fetch, keptConnections, plainHttp } from "../src/upstream/http1.ts";
import { netFetch } from "../src/upstream/http_fetch.ts";
import { waitFor } from "./support/wait.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Seen {
  method: string;
  path: string;
  headers: Map<string, string>;
  body: Uint8Array;
  /** The request line and headers, as they came. */
  head: Uint8Array;
  /** The connection's number, from 1, in the order they were accepted. */
  connection: number;
}

/** Reads requests from one connection, one at a time. */
class RequestReader {
  #conn: Deno.Conn;
  #buffer = new Uint8Array(0);

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  async #more(): Promise<boolean> {
    const chunk = new Uint8Array(64 * 1024);
    const n = await this.#conn.read(chunk).catch(() => null);
    if (n === null) return false;
    const joined = new Uint8Array(this.#buffer.length + n);
    joined.set(this.#buffer);
    joined.set(chunk.subarray(0, n), this.#buffer.length);
    this.#buffer = joined;
    return true;
  }

  /** The next request, or undefined once the client closed the connection. */
  async next(connection: number): Promise<Seen | undefined> {
    let end: number;
    while ((end = decoder.decode(this.#buffer).indexOf("\r\n\r\n")) === -1) {
      if (!await this.#more()) return undefined;
    }
    const [line, ...fields] = decoder.decode(this.#buffer.subarray(0, end)).split("\r\n");
    const [method, path] = line!.split(" ");
    const headers = new Map<string, string>();
    for (const field of fields) {
      const colon = field.indexOf(":");
      headers.set(field.slice(0, colon).toLowerCase(), field.slice(colon + 1).trim());
    }
    const length = Number(headers.get("content-length") ?? 0);
    while (this.#buffer.length < end + 4 + length) {
      if (!await this.#more()) return undefined;
    }
    const head = this.#buffer.slice(0, end);
    const body = this.#buffer.slice(end + 4, end + 4 + length);
    this.#buffer = this.#buffer.slice(end + 4 + length);
    return { method: method!, path: path!, headers, body, head, connection };
  }
}

type Answer = (request: Seen, write: (text: string | Uint8Array) => Promise<void>) => Promise<
  "keep" | "close"
>;

/** A server that answers each request with `answer`; counts the connections it accepted. */
class RawServer implements AsyncDisposable {
  readonly #listener: Deno.TcpListener;
  readonly #conns = new Set<Deno.Conn>();
  readonly seen: Seen[] = [];
  accepted = 0;
  readonly url: URL;
  #done: Promise<void>;

  constructor(answer: Answer) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.url = new URL(`http://127.0.0.1:${this.#listener.addr.port}/mcp`);
    this.#done = this.#accept(answer);
  }

  async #accept(answer: Answer): Promise<void> {
    const served: Promise<void>[] = [];
    try {
      for await (const conn of this.#listener) {
        this.#conns.add(conn);
        served.push(this.#serve(conn, ++this.accepted, answer));
      }
    } catch {
      // The listener was closed.
    }
    await Promise.all(served);
  }

  async #serve(conn: Deno.Conn, number: number, answer: Answer): Promise<void> {
    const reader = new RequestReader(conn);
    const write = async (data: string | Uint8Array) => {
      const bytes = typeof data === "string" ? encoder.encode(data) : data;
      for (let done = 0; done < bytes.length;) done += await conn.write(bytes.subarray(done));
    };
    try {
      for (let request = await reader.next(number); request; request = await reader.next(number)) {
        this.seen.push(request);
        if (await answer(request, write) === "close") break;
      }
    } catch {
      // The client went away.
    } finally {
      this.#conns.delete(conn);
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
    await this.#done;
  }
}

const POST = { method: "POST", redirect: "manual" } as const;

function sized(body: string, extra = ""): string {
  return `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n${extra}content-length: ${
    encoder.encode(body).length
  }\r\n\r\n${body}`;
}

function chunk(text: string): string {
  return `${encoder.encode(text).length.toString(16)}\r\n${text}\r\n`;
}

Deno.test("requests: sized, chunked (extensions, trailers), 204 and 1xx answers on one kept connection", async () => {
  await using server = new RawServer(async (request, write) => {
    const n = Number(request.path.split("=")[1]);
    const echo = decoder.decode(request.body);
    if (n === 0) await write(sized(`{"echo":${JSON.stringify(echo)}}`, "x-kind: sized\r\n"));
    if (n === 1) {
      await write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-kind: chunked\r\n\r\n");
      await write(`${chunk("event: message\n")}C;name=value\r\ndata: hello\n\r\n`);
      await write(`${chunk("\n")}0\r\nx-trailer: yes\r\n\r\n`);
    }
    if (n === 2) await write("HTTP/1.1 204 No Content\r\n\r\n");
    if (n === 3) {
      await write("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n");
      await write(sized("after 1xx"));
    }
    if (n === 4) await write("HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nno such x");
    return "keep";
  });
  const at = (n: number) => new URL(`${server.url.href}?n=${n}`);
  for (let round = 0; round < 3; round++) {
    const a = await http1Fetch(at(0), { ...POST, body: "h\u00e9llo", headers: { "x-a": "1" } });
    assert.equal(a.status, 200);
    assert.equal(a.headers.get("x-kind"), "sized");
    assert.deepEqual(await a.json(), { echo: "h\u00e9llo" });
    const b = await http1Fetch(at(1), { ...POST, body: encoder.encode("{}") });
    assert.equal(b.headers.get("x-kind"), "chunked");
    assert.equal(await b.text(), "event: message\ndata: hello\n\n");
    const c = await http1Fetch(at(2), { method: "DELETE", redirect: "manual" });
    assert.equal(c.status, 204);
    assert.equal(c.body, null);
    const d = await http1Fetch(at(3), { method: "GET", redirect: "manual" });
    assert.equal(await d.text(), "after 1xx");
    const e = await http1Fetch(at(4), { method: "GET", redirect: "manual" });
    assert.equal(e.status, 404);
    assert.equal(e.statusText, "Not Found");
    assert.equal(await e.text(), "no such x");
  }
  assert.equal(server.accepted, 1, "every request went over the one kept connection");
  const first = server.seen[0]!;
  assert.equal(first.method, "POST");
  assert.equal(first.path, "/mcp?n=0");
  assert.equal(first.headers.get("host"), server.url.host);
  assert.equal(first.headers.get("x-a"), "1");
  assert.equal(first.headers.get("content-length"), String(encoder.encode("h\u00e9llo").length));
  assert.equal(decoder.decode(first.body), "h\u00e9llo");
  assert.equal(server.seen[2]!.headers.get("content-length"), undefined, "no body, no length");
});

Deno.test("requests: large bodies pass byte for byte both ways (chunks split anywhere)", async () => {
  await using server = new RawServer(async (request, write) => {
    await write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
    // Odd chunk sizes, each written with its framing split across writes.
    for (let at = 0; at < request.body.length;) {
      const size = Math.min(request.body.length - at, 40_000 + (at % 7));
      await write(`${size.toString(16)}\r`);
      await write(`\n`);
      await write(request.body.subarray(at, at + size));
      await write("\r\n");
      at += size;
    }
    await write("0\r\n\r\n");
    return "keep";
  });
  const text = "\u00fcn\u00efc\u00f8d\u00e9 \u2713 ".repeat(300_000);
  for (const body of [text, encoder.encode(text)]) {
    const response = await http1Fetch(server.url, { ...POST, body });
    assert.equal(await response.text(), text);
  }
  // Read through a BYOB reader, as our transports do, with small views.
  const response = await http1Fetch(server.url, { ...POST, body: "abc".repeat(100_000) });
  const reader = response.body!.getReader({ mode: "byob" });
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read(new Uint8Array(1000));
    if (done) break;
    assert.ok(value.every((byte, i) => byte === "abc".charCodeAt((total + i) % 3)));
    total += value.length;
  }
  assert.equal(total, 300_000);
  assert.equal(server.accepted, 1);
});

Deno.test("requests: a body let go before its end is read to its end, and the connection kept", async () => {
  const rest = Promise.withResolvers<void>();
  await using server = new RawServer(async (request, write) => {
    const n = Number(request.path.split("=")[1]);
    await write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
    if (n < 2) {
      // The rest of the body comes with the part read (an answered event stream's end).
      await write(`${chunk("data: answer\n\n")}${chunk(": more\n\n")}0\r\n\r\n`);
      return "keep";
    }
    await write(chunk("data: answer\n\n"));
    await rest.promise; // the rest comes only after the reader let the body go
    await write(`${chunk(": more\n\n".repeat(1000))}0\r\n\r\n`);
    return "keep";
  });
  for (let n = 0; n < 3; n++) {
    const response = await http1Fetch(new URL(`${server.url.href}?n=${n}`), POST);
    const reader = response.body!.getReader({ mode: "byob" });
    const { value } = await reader.read(new Uint8Array(14));
    assert.equal(decoder.decode(value), "data: answer\n\n");
    await reader.cancel();
    if (n < 2) assert.equal(keptConnections(server.url), 1, "kept at once");
  }
  assert.equal(keptConnections(server.url), 0, "still reading the rest");
  rest.resolve();
  await waitFor(() => Promise.resolve(keptConnections(server.url) === 1));
  const last = await http1Fetch(new URL(`${server.url.href}?n=0`), POST);
  assert.equal(await last.text(), "data: answer\n\n: more\n\n");
  assert.equal(server.accepted, 1, "the bodies let go early were drained, not their connection");
});

Deno.test("requests: a body let go while a read waits on it: that read ends first, and the next answer is whole", async () => {
  const send = Promise.withResolvers<void>();
  const big = `data: ${"x".repeat(20_000)}\n\n`;
  await using server = new RawServer(async (request, write) => {
    await write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
    if (request.path.endsWith("wait")) {
      await write(chunk("data: first\n\n"));
      await send.promise; // the reader lets the body go while its next read waits
      await write(`${chunk(big)}0\r\n\r\n`);
    } else {
      await write(`${chunk("data: next\n\n")}0\r\n\r\n`);
    }
    return "keep";
  });
  for (const mode of ["byob", "default"] as const) {
    const response = await http1Fetch(new URL(`${server.url.href}?wait`), POST);
    const body = response.body!;
    const reader = mode === "byob" ? body.getReader({ mode }) : body.getReader();
    const first = mode === "byob"
      ? await (reader as ReadableStreamBYOBReader).read(new Uint8Array(64 * 1024))
      : await (reader as ReadableStreamDefaultReader<Uint8Array>).read();
    assert.equal(decoder.decode(first.value), "data: first\n\n");
    const waiting = mode === "byob"
      ? (reader as ReadableStreamBYOBReader).read(new Uint8Array(64 * 1024))
      : (reader as ReadableStreamDefaultReader<Uint8Array>).read();
    await reader.cancel();
    await waiting.catch(() => {});
    send.resolve();
    // The read that waited took the rest's start; the drain reads the rest: the connection is kept.
    await waitFor(() => Promise.resolve(keptConnections(server.url) === 1));
  }
  await waitFor(() => Promise.resolve(keptConnections(server.url) === 1));
  const next = await http1Fetch(server.url, POST);
  assert.equal(await next.text(), "data: next\n\n");
  assert.equal(server.accepted, 1);
});

Deno.test("requests: a sized body frees its connection with its last byte", async () => {
  await using server = new RawServer(async (_request, write) => {
    await write(sized("0123456789"));
    return "keep";
  });
  const response = await http1Fetch(server.url, POST);
  const reader = response.body!.getReader({ mode: "byob" });
  const { value } = await reader.read(new Uint8Array(10));
  assert.equal(decoder.decode(value), "0123456789");
  assert.equal(keptConnections(server.url), 1, "kept before any read past the end");
  assert.equal((await reader.read(new Uint8Array(10))).done, true);
  assert.equal(await (await http1Fetch(server.url, POST)).text(), "0123456789");
  assert.equal(server.accepted, 1);
});

Deno.test("requests: a kept connection the server closes is let go", async () => {
  const closing = Promise.withResolvers<void>();
  await using server = new RawServer(async (request, write) => {
    await write(sized("ok"));
    if (request.connection > 1) return "keep";
    await closing.promise;
    return "close";
  });
  assert.equal(await (await http1Fetch(server.url, POST)).text(), "ok");
  assert.equal(keptConnections(server.url), 1);
  closing.resolve();
  await waitFor(() => Promise.resolve(keptConnections(server.url) === 0));
  assert.equal(await (await http1Fetch(server.url, POST)).text(), "ok");
  assert.equal(server.accepted, 2);
});

Deno.test("requests: a body whose rest never comes is let go with its connection", async () => {
  const held = Promise.withResolvers<void>();
  await using server = new RawServer(async (request, write) => {
    await write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
    await write(chunk("data: answer\n\n"));
    if (request.path.endsWith("hold")) await held.promise;
    else await write("0\r\n\r\n");
    return "keep";
  });
  const response = await http1Fetch(new URL(`${server.url.href}?hold`), POST);
  const reader = response.body!.getReader();
  await reader.read();
  await reader.cancel();
  const next = await http1Fetch(server.url, POST);
  assert.equal(await next.text(), "data: answer\n\n");
  held.resolve();
  assert.equal(server.accepted, 2, "the held connection was not reused");
});

Deno.test("requests: close-delimited bodies, Connection: close and HTTP/1.0 answers are not kept", async () => {
  await using server = new RawServer(async (request, write) => {
    const kind = request.path.split("=")[1];
    if (kind === "eof") {
      await write("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end");
      return "close";
    }
    if (kind === "close") {
      await write(sized("closing", "connection: close\r\n"));
      return "close";
    }
    await write("HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\nold");
    return "close";
  });
  const kinds = ["eof", "close", "old"];
  const texts = [];
  for (const kind of kinds) {
    const response = await http1Fetch(new URL(`${server.url.href}?k=${kind}`), POST);
    texts.push(await response.text());
  }
  assert.deepEqual(texts, ["until the end", "closing", "old"]);
  assert.equal(server.accepted, 3);
});

Deno.test("requests: a kept connection closed by the server: a GET is sent again, a POST that went out is not", async () => {
  let posts = 0;
  await using server = new RawServer(async (request, write) => {
    // The first request on each connection is answered; the second meets a close, unanswered.
    const onThisConnection = server.seen.filter((seen) => seen.connection === request.connection);
    if (request.method === "POST") posts++;
    if (onThisConnection.length > 1) return "close";
    await write(sized("ok"));
    return "keep";
  });
  const get = { method: "GET", redirect: "manual" } as const;
  assert.equal(await (await http1Fetch(server.url, get)).text(), "ok");
  assert.equal(await (await http1Fetch(server.url, get)).text(), "ok", "sent again");
  assert.equal(server.accepted, 2);
  // The second connection is kept: the next POST goes out on it and meets the close.
  await assert.rejects(
    http1Fetch(server.url, POST),
    /the server closed the connection without answering/,
  );
  assert.equal(posts, 1, "the POST that met the close was not sent twice");
  assert.equal(await (await http1Fetch(server.url, POST)).text(), "ok", "on a new connection");
  assert.equal(server.accepted, 3);
});

Deno.test("requests: an abort ends the wait for the answer, and the body being read", async () => {
  const answered = Promise.withResolvers<void>();
  await using server = new RawServer(async (request, write) => {
    if (request.path.endsWith("silent")) {
      await answered.promise;
      return "close";
    }
    await write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
    await write(chunk("first"));
    await answered.promise;
    return "close";
  });
  const waiting = new AbortController();
  const pending = http1Fetch(new URL(`${server.url.href}?silent`), {
    ...POST,
    signal: waiting.signal,
  });
  waiting.abort();
  await assert.rejects(
    pending,
    (error: unknown) => error instanceof DOMException && error.name === "AbortError",
  );
  const reading = new AbortController();
  const response = await http1Fetch(server.url, { ...POST, signal: reading.signal });
  const reader = response.body!.getReader();
  assert.equal(decoder.decode((await reader.read()).value), "first");
  const next = reader.read();
  reading.abort(new Error("stopped by the test"));
  await assert.rejects(next, /stopped by the test/);
  const before = new AbortController();
  before.abort();
  await assert.rejects(
    http1Fetch(server.url, { ...POST, signal: before.signal }),
    (error: unknown) => error instanceof DOMException && error.name === "AbortError",
  );
  answered.resolve();
});

Deno.test("requests: Transfer-Encoding over Content-Length (RFC 9112 6.3), 205, and a space before a colon", async () => {
  await using server = new RawServer(async (request, write) => {
    const kind = request.path.split("=")[1];
    if (kind === "split") {
      // Codings over two lines, chunked last; with a Content-Length, the connection is not kept.
      await write("HTTP/1.1 200 OK\r\ntransfer-encoding: identity\r\n");
      await write(
        `transfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n${chunk("chunked")}0\r\n\r\n`,
      );
    }
    if (kind === "gzip") {
      await write(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\ncontent-length: 2\r\n\r\nto the close",
      );
      return "close";
    }
    if (kind === "205") await write("HTTP/1.1 205 Reset Content\r\ncontent-length: 0\r\n\r\n");
    if (kind === "space") await write("HTTP/1.1 200 OK\r\ncontent-length : 2\r\n\r\nok");
    if (kind === "status") await write("HTTP/1.1 999 Odd\r\ncontent-length: 0\r\n\r\n");
    return "keep";
  });
  const at = (kind: string) => new URL(`${server.url.href}?k=${kind}`);
  assert.equal(await (await http1Fetch(at("split"), POST)).text(), "chunked");
  assert.equal(await (await http1Fetch(at("gzip"), POST)).text(), "to the close");
  assert.equal(server.accepted, 2, "neither answer's connection was kept");
  const reset = await http1Fetch(at("205"), POST);
  assert.equal(reset.status, 205);
  assert.equal(reset.body, null);
  await assert.rejects(http1Fetch(at("space"), POST), /malformed header line/);
  await assert.rejects(http1Fetch(at("status"), POST), /answered with status 999/);
  await assert.rejects(http1Fetch(at("205"), { ...POST, method: "PO ST" }), TypeError);
});

Deno.test("requests: answers that are not HTTP, or break off, are errors that say so", async () => {
  await using server = new RawServer(async (request, write) => {
    const kind = request.path.split("=")[1];
    if (kind === "garbage") await write("SSH-2.0-OpenSSH_9.2\r\n\r\n");
    if (kind === "chunk") {
      await write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n");
    }
    if (kind === "length") await write("HTTP/1.1 200 OK\r\ncontent-length: 12x\r\n\r\n");
    if (kind === "short") await write("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this");
    if (kind === "header") await write("HTTP/1.1 200 OK\r\n no-name\r\n\r\n");
    return "close";
  });
  const at = (kind: string) => new URL(`${server.url.href}?k=${kind}`);
  await assert.rejects(
    http1Fetch(at("garbage"), POST),
    /is not HTTP\/1\.x: "SSH-2\.0-OpenSSH_9\.2"/,
  );
  await assert.rejects(http1Fetch(at("length"), POST), /Content-Length is not valid: "12x"/);
  await assert.rejects(http1Fetch(at("header"), POST), /malformed header line/);
  const chunked = await http1Fetch(at("chunk"), POST);
  await assert.rejects(chunked.text(), /malformed chunked body/);
  const short = await http1Fetch(at("short"), POST);
  await assert.rejects(short.text(), /closed the connection before the body ended/);
});

Deno.test("requests: a refused connection says so; to a name, fetch then tries its other addresses", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  await assert.rejects(
    http1Fetch(new URL(`http://127.0.0.1:${port}/mcp`), POST),
    (error: unknown) =>
      error instanceof ConnectError && !error.byName &&
      /Connection refused/.test((error.cause as Error).message),
  );
  await assert.rejects(
    http1Fetch(new URL(`http://localhost:${port}/mcp`), POST),
    (error: unknown) => error instanceof ConnectError && error.byName,
  );
  await assert.rejects(
    netFetch(`http://localhost:${port}/mcp`, POST),
    /^ProxyError: cannot reach http:\/\/localhost:\d+: .*Connection refused/,
  );
  await using server = new RawServer(async (_request, write) => {
    await write(sized("ok"));
    return "keep";
  });
  const byName = `http://localhost:${server.url.port}/mcp`;
  assert.equal(await (await netFetch(byName, POST)).text(), "ok");
  assert.equal(await (await netFetch(byName, POST)).text(), "ok");
  assert.equal(server.accepted, 1);
  assert.equal(server.seen[0]!.headers.get("host"), `localhost:${server.url.port}`);
});

Deno.test("requests: header values with line breaks are refused, never sent", async () => {
  await using server = new RawServer(async (_request, write) => {
    await write(sized("ok"));
    return "keep";
  });
  for (const value of ["a\r\nx-injected: 1", "a\nb", "a\0b"]) {
    await assert.rejects(
      http1Fetch(server.url, { ...POST, headers: { "x-value": value } }),
      TypeError,
    );
  }
  await assert.rejects(
    http1Fetch(server.url, { ...POST, headers: { "bad name": "x" } }),
    TypeError,
  );
  assert.equal(server.seen.length, 0);
});

Deno.test("requests: headers and bodies go as fetch sends them; what fetch refuses is refused", async () => {
  await using server = new RawServer(async (_request, write) => {
    await write(sized("ok"));
    return "keep";
  });
  /**
   * The header lines `send` made, as bytes (Latin-1 read), without the ones only fetch adds: we
   * decode no compressed bodies, and a language preference of "*" says nothing.
   */
  const sent = async (send: (init: RequestInit) => Promise<Response>, init: RequestInit) => {
    await (await send({ ...POST, ...init })).text();
    const head = server.seen.at(-1)!.head;
    return String.fromCharCode(...head).split("\r\n").slice(1)
      .filter((line) => !/^(accept-encoding|accept-language|connection):/i.test(line)).sort();
  };
  const cases: RequestInit[] = [
    { headers: { "x-name": "Jos\u00e9 \u00a0", "x-edge": " \t a b \t" }, body: "{}" },
    { headers: { "content-type": "application/json" }, body: "{}" },
    { body: "caf\u00e9" },
    { body: new Uint8Array([1, 2]) },
    { method: "PUT" },
  ];
  for (const init of cases) {
    assert.deepEqual(
      await sent((options) => http1Fetch(server.url, options), init),
      await sent((options) => fetch(server.url, options), init),
      JSON.stringify(init),
    );
  }
  const before = server.seen.length;
  await assert.rejects(
    http1Fetch(server.url, { ...POST, headers: { "x-euro": "\u20ac" } }),
    TypeError,
    "past Latin-1",
  );
  await assert.rejects(fetch(server.url, { ...POST, headers: { "x-euro": "\u20ac" } }), TypeError);
  for (const method of ["GET", "HEAD"]) {
    await assert.rejects(http1Fetch(server.url, { ...POST, method, body: "" }), TypeError, method);
    await assert.rejects(fetch(server.url, { ...POST, method, body: "" }), TypeError);
  }
  assert.equal(server.seen.length, before, "nothing refused was sent");
});

Deno.test("requests: only plain-http requests with redirects handled by hand, and simple bodies, go over our client", () => {
  const manual = { redirect: "manual" } as const;
  assert.equal(plainHttp("http://127.0.0.1:1/mcp", manual)?.href, "http://127.0.0.1:1/mcp");
  assert.ok(plainHttp(new URL("http://[::1]:8080/"), { ...manual, body: new Uint8Array(1) }));
  assert.equal(plainHttp("https://example.com/mcp", manual), undefined, "TLS: fetch");
  assert.equal(plainHttp("http://127.0.0.1/mcp", {}), undefined, "redirects followed: fetch");
  assert.equal(plainHttp("http://127.0.0.1/mcp", undefined), undefined);
  assert.equal(plainHttp("http://user:pw@127.0.0.1/mcp", manual), undefined, "credentials: fetch");
  assert.equal(
    plainHttp("http://127.0.0.1/mcp", { ...manual, body: new URLSearchParams("a=1") }),
    undefined,
    "form bodies: fetch",
  );
});
