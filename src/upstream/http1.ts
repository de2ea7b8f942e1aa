// Requests to plain-http remote servers over HTTP/1.1 connections of our own, kept alive and
// reused: what `fetch` does for them, at about half the CPU per exchange (Deno's fetch allocates
// 15 to 17 KB of V8 heap per call). Used by our MCP client transports (redirects handled by hand)
// for http: URLs with no proxy in the way; https, proxies and every other request go to `fetch`.
//
// A response body is a byte stream read straight from the connection (chunked, sized, or up to
// the connection's close). An idle connection keeps one read waiting, so a server that closes it
// is noticed at once, never written to. A request that still meets a kept connection closed
// before any byte of its answer is sent once more on a new one when it cannot have run: not all
// of it was written, or its method is idempotent (a POST that was written is not sent twice).

const encoder = new TextEncoder();
/** The socket reads and the framing lines of a connection go into a buffer this size (it grows). */
const BUFFER_SIZE = 16 * 1024;
/** The most a response head may take (status line and headers). */
const MAX_HEAD = 64 * 1024;
/** An idle connection is closed after this long unused. */
const IDLE_MS = 30_000;
/** Idle connections kept per host and port; more are closed. */
const MAX_IDLE = 64;
/** A body left unread is read to its end (to reuse the connection) within these bounds. */
const DRAIN_BYTES = 256 * 1024;
const DRAIN_MS = 1000;
/** Default headers fetch would send. */
const USER_AGENT = `Deno/${Deno.version.deno}`;

/** Idle connections by "host:port", the most recently used last. */
const idle = new Map<string, Connection[]>();
let sweeper: ReturnType<typeof setInterval> | undefined;

/** Whether `request` can go over our HTTP/1.1 client (else it goes to fetch). */
export function plainHttp(url: string | URL, init: RequestInit | undefined): URL | undefined {
  if (!init || init.redirect !== "manual") return undefined;
  const body = init.body;
  if (
    body !== null && body !== undefined && typeof body !== "string" && !(body instanceof Uint8Array)
  ) return undefined;
  const target = typeof url === "string"
    ? (url.startsWith("http:") ? new URL(url) : undefined)
    : url;
  if (!target || target.protocol !== "http:" || target.username || target.password) {
    return undefined;
  }
  return target;
}

/** The answer to one request over HTTP/1.1 (see plainHttp for which requests qualify). */
export async function http1Fetch(url: URL, init: RequestInit): Promise<Response> {
  const signal = init.signal ?? undefined;
  if (signal?.aborted) throw abortReason(signal);
  const method = (init.method ?? "GET").toUpperCase();
  if (!TOKEN.test(method.toLowerCase())) {
    throw new TypeError(`invalid method ${JSON.stringify(method)}`);
  }
  const chunks = requestBytes(method, url, init);
  const key = originKey(url);
  for (let attempt = 0;; attempt++) {
    // A retry never takes another kept connection: a restarted server closed them all.
    const connection = (attempt === 0 ? takeIdle(key) : undefined) ??
      await Connection.open(url, key, signal);
    const abort = () => connection.destroy();
    signal?.addEventListener("abort", abort);
    try {
      await connection.write(chunks);
      return await connection.response(method, signal, () => {
        signal?.removeEventListener("abort", abort);
      });
    } catch (error) {
      signal?.removeEventListener("abort", abort);
      connection.destroy();
      if (signal?.aborted) throw abortReason(signal);
      // A kept connection the server closed as the request went out: once more on a new one,
      // if the request cannot have run (not all of it written, or a method safe to repeat).
      if (error instanceof Stale && attempt === 0 && (error.unsent || REPEATABLE.has(method))) {
        continue;
      }
      throw error instanceof Stale ? error.cause : error;
    }
  }
}

/** The request line, headers and body, as bytes to write in order. */
function requestBytes(method: string, url: URL, init: RequestInit): Uint8Array[] {
  let head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n`;
  let accept = false;
  let agent = false;
  let type = false;
  const add = (name: string, value: string) => {
    const lower = name.toLowerCase();
    if (!TOKEN.test(lower) || BAD_VALUE.test(value)) {
      throw new TypeError(`invalid header ${JSON.stringify(name)}`);
    }
    if (lower === "host" || lower === "content-length" || lower === "transfer-encoding") return;
    if (lower === "accept") accept = true;
    else if (lower === "user-agent") agent = true;
    else if (lower === "content-type") type = true;
    // HTTP's whitespace is trimmed, as fetch does; trim() would take a no-break space too.
    head += `${lower}: ${value.replace(EDGE_SPACE, "")}\r\n`;
  };
  const headers = init.headers;
  if (headers instanceof Headers || Array.isArray(headers)) {
    for (const [name, value] of headers) add(name, value);
  } else if (headers) {
    for (const name in headers) add(name, (headers as Record<string, string>)[name]!);
  }
  if (!accept) head += "accept: */*\r\n";
  if (!agent) head += `user-agent: ${USER_AGENT}\r\n`;
  const body = init.body as string | Uint8Array | null | undefined;
  if (body === null || body === undefined) {
    if (method === "POST" || method === "PUT" || method === "PATCH") {
      head += "content-length: 0\r\n";
    }
    return [headBytes(`${head}\r\n`)];
  }
  if (method === "GET" || method === "HEAD") {
    throw new TypeError(`a ${method} request cannot have a body`);
  }
  // What fetch sends for a text body given no type.
  if (!type && typeof body === "string") head += "content-type: text/plain;charset=UTF-8\r\n";
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  head += `content-length: ${bytes.byteLength}\r\n\r\n`;
  if (bytes.byteLength < 16 * 1024) {
    const start = headBytes(head);
    const joined = new Uint8Array(start.length + bytes.byteLength);
    joined.set(start);
    joined.set(bytes, start.length);
    return [joined];
  }
  return [headBytes(head), bytes];
}

/**
 * A request head as bytes: one byte per character, as fetch sends header values (Latin-1), not
 * UTF-8. Every character is at most 0xFF (BAD_VALUE; the rest is ASCII).
 */
function headBytes(head: string): Uint8Array<ArrayBuffer> {
  if (!NOT_ASCII.test(head)) return encoder.encode(head);
  const bytes = new Uint8Array(head.length);
  for (let i = 0; i < head.length; i++) bytes[i] = head.charCodeAt(i);
  return bytes;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
/** Line breaks and NUL, which would end or corrupt the head, and what Latin-1 cannot hold. */
const BAD_VALUE = /[\r\n\0]|[^\0-\xff]/;
const NOT_ASCII = /[^\0-\x7f]/;
const EDGE_SPACE = /^[\t ]+|[\t ]+$/g;

/** How many idle connections are kept for the origin of `url`. */
export function keptConnections(url: URL): number {
  return idle.get(originKey(url))?.length ?? 0;
}

/** The key of `url`'s idle connections: "host:port". */
function originKey(url: URL): string {
  return `${url.hostname}:${url.port || "80"}`;
}

function takeIdle(key: string): Connection | undefined {
  const list = idle.get(key);
  const connection = list?.pop();
  if (list?.length === 0) idle.delete(key);
  connection?.wake();
  return connection;
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("The signal has been aborted", "AbortError");
}

/**
 * No connection could be made. Deno.connect tries only the first address a name resolves to
 * (fetch tries each in turn): `byName` says whether another address might have answered.
 */
export class ConnectError extends Error {
  readonly byName: boolean;
  constructor(hostname: string, cause: unknown) {
    super(`cannot connect to ${hostname}`, { cause });
    this.name = "ConnectError";
    this.byName = !/^[\d.]+$/.test(hostname) && !hostname.includes(":");
  }
}

/** A kept connection that turned out closed before any of the answer came. */
class Stale extends Error {
  /** Not all of the request was written. */
  readonly unsent: boolean;
  constructor(cause: unknown, unsent: boolean) {
    super("the kept connection was closed", { cause });
    this.unsent = unsent;
  }
}

/** Methods a server may be sent twice (RFC 9110 idempotent methods). */
const REPEATABLE = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);

class Connection {
  readonly key: string;
  #conn: Deno.TcpConn;
  buffer = new Uint8Array(BUFFER_SIZE);
  start = 0;
  end = 0;
  /** The read waiting while the connection is idle (taken over by the next response). */
  #pending?: Promise<number | null>;
  #idle = false;
  idleSince = 0;
  /** Used for an earlier request: a close met before any answer means it went stale. */
  #reused = false;
  destroyed = false;

  private constructor(conn: Deno.TcpConn, key: string) {
    this.#conn = conn;
    this.key = key;
  }

  static async open(url: URL, key: string, signal?: AbortSignal): Promise<Connection> {
    const hostname = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname, port: Number(url.port || 80), signal });
    } catch (error) {
      if (signal?.aborted) throw abortReason(signal);
      if (
        error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
      ) {
        throw error;
      }
      throw new ConnectError(hostname, error);
    }
    conn.setNoDelay(true);
    return new Connection(conn, key);
  }

  async write(chunks: Uint8Array[]): Promise<void> {
    try {
      for (const chunk of chunks) {
        for (let done = 0; done < chunk.byteLength;) {
          done += await this.#conn.write(done === 0 ? chunk : chunk.subarray(done));
        }
      }
    } catch (error) {
      throw this.#reused ? new Stale(error, true) : error;
    }
  }

  /** Reads more into the buffer (moved or grown for room); false at the connection's end. */
  async fill(): Promise<boolean> {
    if (!this.#pending) {
      if (this.start === this.end) this.start = this.end = 0;
      else if (this.end >= this.buffer.length) {
        if (this.start > 0) {
          this.buffer.copyWithin(0, this.start, this.end);
          this.end -= this.start;
          this.start = 0;
        } else if (this.buffer.length < MAX_HEAD) {
          const grown = new Uint8Array(Math.min(this.buffer.length * 2, MAX_HEAD));
          grown.set(this.buffer.subarray(0, this.end));
          this.buffer = grown;
        } else {
          throw new Error("the server's response head or a chunk line is too long");
        }
      }
      this.#pending = this.#conn.read(this.buffer.subarray(this.end));
    }
    const pending = this.#pending;
    try {
      const n = await pending;
      if (n === null) return false;
      this.end += n;
      return true;
    } finally {
      this.#pending = undefined;
    }
  }

  /** Puts bytes read past a body's part back in the (empty) buffer. */
  keep(bytes: Uint8Array): void {
    if (bytes.length > this.buffer.length) this.buffer = new Uint8Array(bytes.length);
    this.buffer.set(bytes);
    this.start = 0;
    this.end = bytes.length;
  }

  /** Reads into `into` directly (nothing must be buffered); null at the connection's end. */
  read(into: Uint8Array): Promise<number | null> {
    return this.#conn.read(into);
  }

  /** One line (CRLF or LF ended), without its end; undefined at the connection's end. */
  async line(): Promise<string | undefined> {
    for (;;) {
      const line = this.bufferedLine();
      if (line !== undefined || !await this.fill()) return line;
    }
  }

  /** The next line if all of it is in the buffer, else undefined (nothing taken). */
  bufferedLine(): string | undefined {
    const at = this.buffer.subarray(this.start, this.end).indexOf(10);
    if (at === -1) return undefined;
    const lineEnd = this.start + at;
    const cr = lineEnd > this.start && this.buffer[lineEnd - 1] === 13;
    const text = latin1(this.buffer, this.start, cr ? lineEnd - 1 : lineEnd);
    this.start = lineEnd + 1;
    return text;
  }

  /** Reads the response head (1xx skipped) and makes the Response, its body read on demand. */
  async response(
    method: string,
    signal: AbortSignal | undefined,
    done: () => void,
  ): Promise<Response> {
    for (;;) {
      let status: number;
      let statusText: string;
      let version: string;
      const headers: [string, string][] = [];
      try {
        const line = await this.line();
        if (line === undefined) {
          throw new Error("the server closed the connection without answering");
        }
        const match = STATUS_LINE.exec(line);
        if (!match) {
          throw new Error(
            `the server's answer is not HTTP/1.x: ${JSON.stringify(line.slice(0, 80))}`,
          );
        }
        version = match[1]!;
        status = Number(match[2]);
        statusText = match[3] ?? "";
      } catch (error) {
        throw this.#reused && this.start === 0 && this.end === 0 ? new Stale(error, false) : error;
      }
      this.#reused = false;
      let size = 0;
      for (;;) {
        const line = await this.line();
        if (line === undefined) {
          throw new Error("the server closed the connection in the response head");
        }
        if (line === "") break;
        size += line.length;
        if (size > MAX_HEAD) throw new Error("the server's response head is too long");
        const colon = line.indexOf(":");
        // No space before the colon (RFC 9112 5.1), no folded lines.
        if (colon <= 0 || line.charCodeAt(0) <= 32 || line.charCodeAt(colon - 1) <= 32) {
          throw new Error(
            `malformed header line in the server's answer: ${JSON.stringify(line.slice(0, 80))}`,
          );
        }
        headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
      }
      if (status < 200) {
        if (status === 101) throw new Error("the server switched protocols unasked");
        continue;
      }
      if (status > 599) throw new Error(`the server answered with status ${status}`);
      let codings: string | undefined;
      let length: number | undefined;
      let close = version === "1.0";
      for (const [name, value] of headers) {
        const lower = name.toLowerCase();
        if (lower === "transfer-encoding") codings = codings ? `${codings},${value}` : value;
        else if (lower === "content-length") {
          if (!/^\d+$/.test(value) || (length !== undefined && length !== Number(value))) {
            throw new Error(`the server's Content-Length is not valid: ${JSON.stringify(value)}`);
          }
          length = Number(value);
        } else if (lower === "connection") {
          if (/(?:^|,)\s*close\s*(?:,|$)/i.test(value)) close = true;
          else if (version === "1.0" && /keep-alive/i.test(value)) close = false;
        }
      }
      // RFC 9112 6.3: Transfer-Encoding overrides Content-Length (and the connection is not kept
      // after such an answer); a last coding other than chunked runs to the connection's close.
      const chunked = codings !== undefined && /(?:^|,)\s*chunked\s*$/i.test(codings);
      if (codings !== undefined) {
        if (length !== undefined || !chunked) close = true;
        length = undefined;
      }
      const init = { status, statusText, headers };
      if (status === 205 && (chunked || (length ?? 1) > 0)) close = true;
      if (
        method === "HEAD" || status === 204 || status === 205 || status === 304 ||
        (!chunked && length === 0)
      ) {
        this.release(close);
        done();
        return new Response(null, init);
      }
      const body = new Body(
        this,
        chunked ? "chunked" : length !== undefined ? "length" : "close",
        length ?? 0,
        close,
        signal,
        done,
      );
      return new Response(body.stream(), init);
    }
  }

  /** After a complete response: kept for the next request, or closed. */
  release(close: boolean): void {
    if (close || this.destroyed || this.start !== this.end) return this.destroy();
    const list = idle.get(this.key) ?? [];
    if (list.length >= MAX_IDLE) return this.destroy();
    list.push(this);
    idle.set(this.key, list);
    this.#idle = true;
    this.#reused = true;
    this.idleSince = Date.now();
    this.start = this.end = 0;
    this.#conn.unref();
    // A server that closes (or writes to) an idle connection is noticed now, not at the next use.
    const pending = this.#conn.read(this.buffer);
    this.#pending = pending;
    pending.then(
      (n) => this.#idle && (n === null || n > 0) && this.destroy(),
      () => this.destroy(),
    );
    sweeper ??= startSweeper();
  }

  /** Taken from the idle list for a request. */
  wake(): void {
    this.#idle = false;
    this.#conn.ref();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (this.#idle) {
      this.#idle = false;
      const list = idle.get(this.key);
      const at = list?.indexOf(this) ?? -1;
      if (at !== -1) list!.splice(at, 1);
      if (list?.length === 0) idle.delete(this.key);
    }
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

const STATUS_LINE = /^HTTP\/(1\.[01]) (\d{3})(?: (.*))?$/;

function latin1(bytes: Uint8Array, start: number, end: number): string {
  let text = "";
  for (let i = start; i < end; i += 4096) {
    const part = bytes.subarray(i, Math.min(end, i + 4096));
    text += String.fromCharCode.apply(null, part as unknown as number[]);
  }
  return text;
}

function startSweeper(): ReturnType<typeof setInterval> {
  const timer = setInterval(() => {
    const now = Date.now();
    for (const list of [...idle.values()]) {
      for (const connection of [...list]) {
        if (now - connection.idleSince >= IDLE_MS) connection.destroy();
      }
    }
    if (idle.size === 0) {
      clearInterval(timer);
      sweeper = undefined;
    }
  }, IDLE_MS / 2);
  Deno.unrefTimer(timer);
  return timer;
}

/** A response body read from its connection: chunked, sized, or up to the connection's close. */
class Body {
  #connection: Connection;
  #mode: "chunked" | "length" | "close";
  /** Bytes left in the body ("length") or in the current chunk ("chunked", phase "data"). */
  #left: number;
  /** Where a chunked body is: in a chunk's data, or at the line after it, a size line or trailers. */
  #phase: "data" | "crlf" | "size" | "trailers" = "size";
  #close: boolean;
  #done = false;
  /** The read a pull is waiting on. */
  #reading?: Promise<number | null>;
  #signal?: AbortSignal;
  #finished: () => void;

  constructor(
    connection: Connection,
    mode: "chunked" | "length" | "close",
    length: number,
    close: boolean,
    signal: AbortSignal | undefined,
    finished: () => void,
  ) {
    this.#connection = connection;
    this.#mode = mode;
    this.#left = mode === "length" ? length : mode === "close" ? Infinity : 0;
    this.#close = close || mode === "close";
    this.#signal = signal;
    this.#finished = finished;
  }

  stream(): ReadableStream<Uint8Array> {
    return new ReadableStream({
      type: "bytes",
      autoAllocateChunkSize: BUFFER_SIZE,
      pull: async (controller) => {
        const request = controller.byobRequest!;
        const view = request.view!;
        const into = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
        let n: number | null;
        const reading = this.read(into);
        this.#reading = reading;
        try {
          n = await reading;
        } catch (error) {
          this.#end(false);
          throw this.#signal?.aborted ? abortReason(this.#signal) : error;
        } finally {
          this.#reading = undefined;
        }
        if (n === null) {
          controller.close();
          request.respond(0);
        } else {
          request.respond(n);
        }
      },
      // The reader goes on at once; the rest of the body is read (or the connection closed) apart.
      cancel: () => void this.#drain(),
    });
  }

  /** Up to `into.length` bytes of the body, copied into `into`: how many, or null at its end. */
  async read(into: Uint8Array): Promise<number | null> {
    const connection = this.#connection;
    for (;;) {
      if (this.#done) return null;
      if (this.#left > 0) {
        if (connection.start < connection.end) {
          const n = Math.min(into.length, this.#left, connection.end - connection.start);
          into.set(connection.buffer.subarray(connection.start, connection.start + n));
          connection.start += n;
          this.#consumed(n);
          return n;
        }
        // Straight from the socket into the reader's memory. A chunk's data may be followed by its
        // framing and the next chunk's start: what was read past the chunk goes to the buffer.
        const room = this.#mode === "chunked" ? this.#left + BUFFER_SIZE : this.#left;
        const n = await connection.read(into.length > room ? into.subarray(0, room) : into);
        if (n === null) {
          if (this.#mode === "close") return this.#end(false), null;
          throw new Error("the server closed the connection before the body ended");
        }
        const data = Math.min(n, this.#left);
        if (n > data) connection.keep(into.subarray(data, n));
        this.#consumed(data);
        return data;
      }
      if (this.#mode === "length") return this.#end(true), null;
      const line = await connection.line();
      if (line === undefined) {
        throw new Error("the server closed the connection before the body ended");
      }
      this.#framing(line);
    }
  }

  #consumed(n: number): void {
    this.#left -= n;
    if (this.#left > 0) return;
    if (this.#mode === "chunked") this.#phase = "crlf";
    // A sized body's last byte frees its connection now, not at a read after it.
    else if (this.#mode === "length") this.#end(true);
  }

  /** One line of a chunked body's framing: a chunk's closing CRLF, a size line or a trailer. */
  #framing(line: string): void {
    if (this.#phase === "crlf") {
      if (line !== "") throw new Error("malformed chunked body from the server");
      this.#phase = "size";
    } else if (this.#phase === "size") {
      const size = line.split(";", 1)[0]!.trim();
      if (!/^[0-9a-fA-F]{1,12}$/.test(size)) {
        throw new Error("malformed chunked body from the server");
      }
      this.#left = parseInt(size, 16);
      this.#phase = this.#left > 0 ? "data" : "trailers";
    } else if (line === "") {
      this.#end(true);
    }
  }

  #end(complete: boolean): void {
    if (this.#done) return;
    this.#done = true;
    if (complete) this.#connection.release(this.#close);
    else this.#connection.destroy();
    this.#finished();
  }

  /**
   * The reader let the body go. The connection is kept when the body's rest is read: at once when
   * the buffer holds it (an answered event stream's end usually came with the answer), else
   * apart, within bounds; otherwise it is closed.
   */
  async #drain(): Promise<void> {
    if (this.#done) return;
    if (this.#mode === "close" || this.#close) return this.#end(false);
    if (this.#reading) {
      // A read is waiting on the connection: it ends first (within the bound), never two at once.
      const timer = setTimeout(() => this.#end(false), DRAIN_MS);
      Deno.unrefTimer(timer);
      await this.#reading.catch(() => {});
      clearTimeout(timer);
      if (this.#done) return;
    }
    const connection = this.#connection;
    try {
      for (;;) {
        if (this.#left > 0) {
          const n = Math.min(this.#left, connection.end - connection.start);
          connection.start += n;
          this.#consumed(n);
          if (this.#left > 0) break;
        } else if (this.#mode === "length") {
          return this.#end(true);
        } else {
          const line = connection.bufferedLine();
          if (line === undefined) break;
          this.#framing(line);
          if (this.#done) return;
        }
      }
    } catch {
      return this.#end(false);
    }
    const timer = setTimeout(() => this.#end(false), DRAIN_MS);
    Deno.unrefTimer(timer);
    const scratch = new Uint8Array(BUFFER_SIZE);
    try {
      for (let read = 0; read <= DRAIN_BYTES;) {
        const n = await this.read(scratch);
        if (n === null) return;
        read += n;
      }
      this.#end(false);
    } catch {
      this.#end(false);
    } finally {
      clearTimeout(timer);
    }
  }
}
