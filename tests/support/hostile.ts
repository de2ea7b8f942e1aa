// Hand-written HTTP/1.1 for hostile-input tests: fetch replaces a Host header with the URL's and
// cannot send a missing, duplicated or oversized one. Also: a server on 127.0.0.1:0 that records
// every request it gets (for "this must never reach that origin" checks).

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What came back: a status and its headers and body, or a connection closed without an answer. */
export type RawAnswer =
  | { closed: false; status: number; headers: Headers; body: string }
  | { closed: true; why: string };

/**
 * Sends the request line and header `lines` and `body` over a new connection with `Connection:
 * close`, and reads to EOF, or for `timeoutMs` (an event stream never ends: what came so far).
 */
export async function rawRequest(
  port: number,
  lines: readonly string[],
  body = "",
  timeoutMs = 3_000,
): Promise<RawAnswer> {
  const payload = encoder.encode(body);
  const head = [...lines, "connection: close"];
  if (body !== "") head.push(`content-length: ${payload.byteLength}`);
  const bytes = new Uint8Array([...encoder.encode(head.join("\r\n") + "\r\n\r\n"), ...payload]);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunks: Uint8Array[] = [];
  const reader = conn.readable.getReader();
  const timer = setTimeout(() => reader.cancel().catch(() => {}), timeoutMs);
  try {
    for (let written = 0; written < bytes.byteLength;) {
      written += await conn.write(bytes.subarray(written));
    }
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
  } catch (error) {
    if (chunks.length === 0) return { closed: true, why: String(error) };
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
  const text = decoder.decode(new Uint8Array(chunks.flatMap((chunk) => [...chunk])));
  const split = text.indexOf("\r\n\r\n");
  if (split === -1) return { closed: true, why: `no complete answer: ${JSON.stringify(text)}` };
  const [statusLine, ...headerLines] = text.slice(0, split).split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? "")?.[1]);
  const headers = new Headers();
  for (const line of headerLines) {
    const colon = line.indexOf(":");
    headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  let rest = text.slice(split + 4);
  if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) rest = dechunk(rest);
  return { closed: false, status, headers, body: rest };
}

function dechunk(text: string): string {
  let out = "";
  let at = 0;
  for (;;) {
    const end = text.indexOf("\r\n", at);
    if (end === -1) return out;
    const size = parseInt(text.slice(at, end), 16);
    if (!(size > 0)) return out;
    out += text.slice(end + 2, end + 2 + size);
    at = end + 2 + size + 2;
  }
}

/** One request a Recorder saw. */
export interface Recorded {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** A server on 127.0.0.1:0 answering with `answer`, remembering every request. */
export interface Recorder extends AsyncDisposable {
  readonly origin: string;
  readonly requests: Recorded[];
}

export function startRecorder(
  answer: (req: Request, body: string) => Response | Promise<Response> = () =>
    new Response("not here", { status: 404 }),
): Recorder {
  const requests: Recorded[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const body = await req.text();
    requests.push({
      method: req.method,
      url: req.url,
      headers: Object.fromEntries(req.headers),
      body,
    });
    return await answer(req, body);
  });
  return {
    origin: `http://127.0.0.1:${server.addr.port}`,
    requests,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}
