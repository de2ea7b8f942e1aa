// A client that sends one HTTP/1.1 request over a raw TCP connection, reads the response head,
// then stops reading (a slow or stuck reader: what the server writes piles up on its side).

export interface SlowReader extends Disposable {
  /** The status line and headers, as received. */
  readonly head: string;
  readonly status: number;
  /** What came after the head in the same reads (the start of the body). */
  readonly rest: string;
  /** Reads one more chunk of the body, as text ("" at the end). */
  readSome(): Promise<string>;
  /** Reads as fast as it can until `marker` has come (or the connection ends); bytes read. */
  readUntil(marker: string): Promise<number>;
}

/** Sends `method` `url` with `headers` and `body`; resolves once the response head has arrived. */
export async function slowRequest(
  url: URL,
  init: { method: string; headers?: Record<string, string>; body?: string },
): Promise<SlowReader> {
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  const body = init.body === undefined ? undefined : new TextEncoder().encode(init.body);
  const lines = [
    `${init.method} ${url.pathname}${url.search} HTTP/1.1`,
    `host: ${url.host}`,
    ...Object.entries(init.headers ?? {}).map(([name, value]) => `${name}: ${value}`),
    ...(body ? [`content-length: ${body.length}`] : []),
    "",
    "",
  ];
  const request = new TextEncoder().encode(lines.join("\r\n"));
  await writeAll(conn, request);
  if (body) await writeAll(conn, body);
  let received = "";
  const buffer = new Uint8Array(4096);
  const decoder = new TextDecoder();
  while (!received.includes("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error(`the connection closed before a response head: ${received}`);
    received += decoder.decode(buffer.subarray(0, n), { stream: true });
  }
  const end = received.indexOf("\r\n\r\n");
  const head = received.slice(0, end);
  return {
    head,
    status: Number(head.split(" ")[1]),
    rest: received.slice(end + 4),
    async readSome() {
      const n = await conn.read(buffer);
      return n === null ? "" : decoder.decode(buffer.subarray(0, n), { stream: true });
    },
    async readUntil(marker: string) {
      const chunk = new Uint8Array(1024 * 1024);
      let window = received.slice(end + 4);
      let total = 0;
      while (!window.includes(marker)) {
        const n = await conn.read(chunk);
        if (n === null) break;
        total += n;
        window = (window + decoder.decode(chunk.subarray(0, n), { stream: true }))
          .slice(-(marker.length + 64 * 1024));
      }
      return total;
    },
    [Symbol.dispose]() {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    },
  };
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}
