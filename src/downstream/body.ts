// Reads and checks a POSTed JSON-RPC body: size limit (413), content type (415), malformed JSON
// (400 with -32700) and message shape (400 with -32600), before anything reaches a session.

import {
  checkMessage,
  INVALID_REQUEST,
  keepText,
  LARGE_MESSAGE,
  PARSE_ERROR,
  parseLargeMessage,
} from "../jsonrpc.ts";

export type BodyResult = { ok: true; value: unknown } | { ok: false; response: Response };

/** A JSON-RPC error as an HTTP response; `id` null because the request was never identified. */
export function jsonRpcErrorResponse(
  status: number,
  code: number,
  message: string,
  headers: HeadersInit = {},
): Response {
  return Response.json({ jsonrpc: "2.0", id: null, error: { code, message } }, {
    status,
    headers,
  });
}

/** Reads at most `maxBytes` of `req`'s body and parses it as one message or a batch of them. */
export async function readJsonBody(req: Request, maxBytes: number): Promise<BodyResult> {
  const type = req.headers.get("content-type") ?? "";
  if (!/^application\/json\b/i.test(type.trim())) {
    const got = type ? `"${type}"` : "none";
    return fail(415, INVALID_REQUEST, `Content-Type must be application/json (got ${got})`);
  }
  const declared = Number(req.headers.get("content-length") ?? NaN);
  if (declared > maxBytes) return tooLarge(maxBytes, declared);
  let bytes: Uint8Array<ArrayBuffer> | undefined;
  try {
    bytes = await readLimited(req, maxBytes, Number.isSafeInteger(declared) ? declared : undefined);
  } catch {
    // The client went away mid-upload: nobody is left to read a detailed answer.
    return fail(400, INVALID_REQUEST, "Bad Request: the request body could not be read");
  }
  if (bytes === undefined) return tooLarge(maxBytes);
  if (bytes.length >= LARGE_MESSAGE) {
    // A large message with long strings: no text of it is made (they stay bytes until read).
    const large = parseLargeMessage(bytes, { owned: true, strict: true });
    if (large) return { ok: true, value: large };
  }
  const { text, exact } = decode(bytes);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const detail = error instanceof SyntaxError ? `: ${error.message}` : "";
    return fail(400, PARSE_ERROR, `Parse error: the body is not valid JSON${detail}`);
  }
  const messages = Array.isArray(value) ? value : [value];
  if (messages.length === 0) return fail(400, INVALID_REQUEST, "Invalid Request: empty batch");
  for (const message of messages) {
    const problem = checkMessage(message, true);
    if (problem) return fail(400, INVALID_REQUEST, `Invalid Request: ${problem}`);
  }
  // A large lone message goes on as these bytes, not serialized again (a batch's are).
  keepText(value, text, exact ? bytes : undefined);
  return { ok: true, value };
}

/** Decodes whole bodies (not streamed: one decoder serves every request). */
const decoder = new TextDecoder();
/**
 * A body's text, as the decoder gives it (a byte order mark dropped, bytes that are not UTF-8
 * replaced by U+FFFD), and whether it is exactly the bytes' decoding (neither happened): only then
 * may the bytes go on in its place. A U+FFFD sent as such counts as replaced, harmlessly; a text
 * of one-byte characters cannot hold one, which V8 knows without scanning it.
 */
function decode(bytes: Uint8Array): { text: string; exact: boolean } {
  const text = decoder.decode(bytes);
  const bom = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
  return { text, exact: !bom && !text.includes("\ufffd") };
}

/**
 * The largest declared body read in one go, without req.body: that stream, its reader and a
 * promise per chunk outlived the young generation on every request (1.2 KB promoted per call
 * through serve, measured with --trace-gc-nvp). Deno allocates the declared length at once, so a
 * client declaring more and sending it slowly would hold that much: hence the bound.
 */
const ONE_GO_MAX = 64 * 1024;
/** The largest declared body read into a buffer allocated before it arrives. */
const PREALLOCATE_MAX = 2 * 1024 * 1024;

/**
 * The body's bytes, or undefined past `maxBytes`. A declared length bounds what is read (HTTP/1.1
 * frames the body by it and refuses it beside chunked encoding; HTTP/2 refuses more data). A
 * small body is read in one go; a larger one's chunks are copied into one buffer as they come (no
 * list of chunks and a second buffer for a large body).
 */
async function readLimited(
  req: Request,
  maxBytes: number,
  declared?: number,
): Promise<Uint8Array<ArrayBuffer> | undefined> {
  if (declared !== undefined && declared <= ONE_GO_MAX) {
    return new Uint8Array(await req.arrayBuffer());
  }
  if (!req.body) return new Uint8Array(0);
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  let total = 0;
  // Only up to a bound: a client declaring a large body and sending it slowly holds no more.
  let into = declared !== undefined && declared <= PREALLOCATE_MAX
    ? new Uint8Array(declared)
    : undefined;
  const reader = req.body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const offset = total;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    if (into && total <= into.length) {
      into.set(value, offset);
      continue;
    }
    // More than declared: what the buffer holds becomes the first chunk.
    if (into) chunks.push(into.subarray(0, offset));
    into = undefined;
    chunks.push(value);
  }
  if (into) return into.subarray(0, total);
  if (chunks.length === 1) return chunks[0];
  const all = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return all;
}

function tooLarge(maxBytes: number, declared?: number): BodyResult {
  const got = declared === undefined ? "" : ` (got ${declared} bytes)`;
  return fail(
    413,
    INVALID_REQUEST,
    `Payload too large: the limit is ${maxBytes} bytes${got}; raise it with --max-body`,
  );
}

function fail(status: number, code: number, message: string): BodyResult {
  return { ok: false, response: jsonRpcErrorResponse(status, code, message) };
}
