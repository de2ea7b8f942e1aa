// JSON-RPC helpers shared by every transport: classifying messages, building wire errors and
// parsing one frame. Wire errors go to clients; local errors (src/errors.ts) go to stderr.

import type {
  JSONRPCErrorResponse,
  JSONRPCMessage,
  JSONRPCNotification,
  JSONRPCRequest,
  JSONRPCResultResponse,
  RequestId,
} from "./sdk.ts";

export type { JSONRPCMessage, JSONRPCNotification, JSONRPCRequest, RequestId };

/** A response, successful or not, as it travels on the wire. */
export type JSONRPCResponseLike = JSONRPCResultResponse | JSONRPCErrorResponse;

export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
export const METHOD_NOT_FOUND = -32601;
export const INVALID_PARAMS = -32602;
export const INTERNAL_ERROR = -32603;
/** Implementation-defined server error: the upstream failed, exited or cannot be reached. */
export const UPSTREAM_ERROR = -32000;
export const SESSION_NOT_FOUND = -32001;

export function isRequest(message: JSONRPCMessage): message is JSONRPCRequest {
  return "method" in message && "id" in message && message.id !== undefined;
}

export function isNotification(message: JSONRPCMessage): message is JSONRPCNotification {
  return "method" in message && !("id" in message && message.id !== undefined);
}

export function isResponse(message: JSONRPCMessage): message is JSONRPCResponseLike {
  return !("method" in message) && ("result" in message || "error" in message);
}

/** Builds a JSON-RPC error response; `id` is null when the request could not be identified. */
export function errorResponse(
  id: RequestId | null,
  code: number,
  message: string,
): JSONRPCMessage {
  return { jsonrpc: "2.0", id, error: { code, message } } as unknown as JSONRPCMessage;
}

/**
 * Why a request reusing `id` is refused: MCP says a request id MUST NOT have been used before by
 * the same side in the session, and one still in flight would get the other's answer.
 */
export function reusedIdReason(id: RequestId): string {
  return `Invalid Request: id ${JSON.stringify(id)} is already used by a request in flight ` +
    `(request ids must not be reused within a session)`;
}

/** The request a `notifications/cancelled` names, if `message` is one. */
export function cancelledId(message: JSONRPCMessage): RequestId | undefined {
  if (!("method" in message) || message.method !== "notifications/cancelled") return undefined;
  return (message.params as { requestId?: RequestId } | undefined)?.requestId;
}

/** The progress token a request asked progress notifications for, if any. */
export function progressTokenOf(message: JSONRPCRequest): string | number | undefined {
  const token = (message.params?._meta as { progressToken?: unknown } | undefined)?.progressToken;
  return typeof token === "string" || typeof token === "number" ? token : undefined;
}

/**
 * Validates that a parsed value is one JSON-RPC 2.0 message (object, `jsonrpc: "2.0"`, and a
 * method or a result/error). Returns a reason when it is not. `strict` (what clients send us):
 * also no members beyond JSON-RPC's, integer ids and object params, as MCP requires; servers'
 * messages are taken as they come.
 */
export function checkMessage(value: unknown, strict = false): string | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return "expected a JSON-RPC message object";
  }
  const record = value as Record<string, unknown>;
  if (record.jsonrpc !== "2.0") return 'expected "jsonrpc": "2.0"';
  if (strict) {
    const extra = Object.keys(record).find((key) => !MEMBERS.has(key));
    if (extra !== undefined) return `unknown member "${extra.slice(0, 40)}"`;
    if (typeof record.id === "number" && !Number.isInteger(record.id)) {
      return '"id" must be a string or an integer';
    }
  }
  if ("method" in record) {
    if (typeof record.method !== "string") return '"method" must be a string';
    if ("id" in record && !isValidId(record.id)) return '"id" must be a string or a number';
    if ("params" in record && (typeof record.params !== "object" || record.params === null)) {
      return '"params" must be an object or an array';
    }
    if (strict && Array.isArray(record.params)) return '"params" must be an object in MCP';
    return undefined;
  }
  const hasResult = "result" in record;
  const hasError = "error" in record;
  if (hasResult && hasError) return 'a response has "result" or "error", not both';
  if (hasResult) return isValidId(record.id) ? undefined : '"id" must be a string or a number';
  if (hasError) {
    if (!isValidId(record.id) && record.id !== null) {
      return '"id" must be a string, a number or null';
    }
    const error = record.error as Record<string, unknown> | null;
    if (typeof error !== "object" || error === null || Array.isArray(error)) {
      return '"error" must be an object';
    }
    if (typeof error.code !== "number" || !Number.isInteger(error.code)) {
      return '"error.code" must be an integer';
    }
    if (typeof error.message !== "string") return '"error.message" must be a string';
    return undefined;
  }
  return 'expected "method", "result" or "error"';
}

/**
 * The JSON text a large message arrived as, kept so that forwarding it unchanged skips a
 * re-serialization (a 1 MiB tool result or request is then never stringified again), and with
 * it, where we read the message whole as bytes (a POSTed body), those bytes: sent on as they came,
 * not encoded again. Only single-line text (safe in stdio lines and SSE data), and never for a
 * message we built: a changed message is a new object, which has nothing kept. Where a filter is
 * set, a client's messages have theirs dropped (dropText): the server then reads what the filter
 * judged, with no duplicate key meaning one name to the filter and another to the server.
 */
const KEPT = new WeakMap<object, Kept>();

interface Kept {
  text?: string;
  bytes?: Uint8Array<ArrayBuffer>;
  /** Where the value of the message's one top-level "id" member is in `bytes`, when known. */
  idAt?: readonly [number, number];
  /** That id's JSON instead (the message sent on under another id: see withId). */
  id?: Uint8Array<ArrayBuffer>;
}
/** Below this, JSON.stringify is cheaper than the bookkeeping. */
const KEEP_MIN = 16 * 1024;

/**
 * Keeps `text` as the wire form of `value`, parsed from it, when worth it and safe: one message
 * (not a batch), long, on one line. `bytes`, its UTF-8 encoding, is kept with it when the text
 * needed no trimming.
 */
export function keepText(value: unknown, text: string, bytes?: Uint8Array<ArrayBuffer>): void {
  if (text.length < KEEP_MIN || typeof value !== "object" || value === null) return;
  if (Array.isArray(value)) return;
  const trimmed = text.trim(); // a body ending in a newline is common
  if (trimmed.includes("\n") || trimmed.includes("\r")) return;
  KEPT.set(value, bytes && trimmed.length === text.length ? { text, bytes } : { text: trimmed });
}

/** Forgets the text `message` arrived as: it is sent as parsed (JSON.stringify). */
export function dropText(message: object): void {
  KEPT.delete(message);
}

/** The JSON text of `message`: the text it arrived as, if kept, else JSON.stringify. */
export function jsonText(message: JSONRPCMessage): string {
  const kept = KEPT.get(message);
  if (kept && kept.text === undefined && kept.bytes) kept.text = decoder.decode(joined(kept));
  return kept?.text ?? JSON.stringify(message);
}

/** `message` to send as a whole: the bytes it arrived as, if kept, else its JSON text. */
export function jsonBody(message: JSONRPCMessage): string | Uint8Array<ArrayBuffer> {
  const kept = KEPT.get(message);
  return (kept?.bytes && joined(kept)) ?? kept?.text ?? JSON.stringify(message);
}

/**
 * `message` to write in order, with no copy: the bytes it arrived as, in pieces when it goes on
 * under another id, if kept; else its JSON text.
 */
export function jsonChunks(message: JSONRPCMessage): string | Uint8Array<ArrayBuffer>[] {
  const kept = KEPT.get(message);
  if (!kept?.bytes) return kept?.text ?? JSON.stringify(message);
  if (!kept.id) return [kept.bytes];
  const [start, end] = kept.idAt!;
  return [kept.bytes.subarray(0, start), kept.id, kept.bytes.subarray(end)];
}

/** The length of `message`'s JSON, in bytes where it is kept as bytes, else in characters. */
export function jsonSize(message: JSONRPCMessage): number {
  return chunksSize(jsonChunks(message));
}

/** The length of what jsonChunks gave. */
export function chunksSize(chunks: string | readonly Uint8Array[]): number {
  if (typeof chunks === "string") return chunks.length;
  let size = 0;
  for (const chunk of chunks) size += chunk.length;
  return size;
}

/** The kept bytes as one array (a copy only when the id was replaced). */
function joined(kept: Kept): Uint8Array<ArrayBuffer> {
  const bytes = kept.bytes!;
  if (!kept.id) return bytes;
  const [start, end] = kept.idAt!;
  const whole = new Uint8Array(bytes.length - (end - start) + kept.id.length);
  whole.set(bytes.subarray(0, start));
  whole.set(kept.id, start);
  whole.set(bytes.subarray(end), start + kept.id.length);
  return whole;
}

/**
 * `message` with another id (a proxy's own for a request, the client's back on its answer). A
 * message kept as bytes whose id is known keeps them, with the new id written in its place: a
 * large answer is not serialized again for its id.
 */
export function withId<T extends JSONRPCMessage>(message: T, id: RequestId): T {
  const next = { ...message, id } as T;
  const kept = KEPT.get(message);
  if (kept?.bytes && kept.idAt) {
    KEPT.set(next, { bytes: kept.bytes, idAt: kept.idAt, id: encoder.encode(JSON.stringify(id)) });
  }
  return next;
}

const decoder = new TextDecoder();

/** From this many bytes on, a message read as bytes is given to parseLarge first. */
export const LARGE_MESSAGE = 128 * 1024;
/** Strings from this many bytes on are left as bytes by parseLarge, decoded when first read. */
const LONG_STRING = 64 * 1024;
/** parseLarge leaves a message whose other parts are longer than this to JSON.parse. */
const REST_MAX = 64 * 1024;
/** Starts each stand-in for a long string; a message that could hold it is left to JSON.parse. */
const MARK = "\uffff mcp-proxy ";
const MAY_HOLD_MARK = /\uffff|\\u[fF]{4}/;
/** The bytes that may follow a backslash in a JSON string ("\/bfnrtu). */
const ESCAPES = new Set([34, 92, 47, 98, 102, 110, 114, 116]);

/**
 * A large JSON-RPC message from its UTF-8 bytes, with each long string left as bytes and decoded
 * only when read (an accessor that becomes a plain member then), and the bytes kept for sending
 * it on unchanged (keepText). Forwarding a 1 MiB tool result or argument then makes no string of
 * its size: V8 gives every string of 128 KiB or more a fresh mapping, faulted in page by page
 * and unmapped when collected (about 260 faults and 3 ms of CPU per MiB, where a fault is slow),
 * and JSON.parse copies the long string into another one.
 *
 * One pass over the bytes finds the strings, checks the long ones (no control characters, valid
 * escapes), and sends the rest, with a stand-in for each long string, to JSON.parse, which checks
 * it: the stand-ins parse as strings in the same places, so the rest parses only if the whole
 * does, to the same members in the same order. Undefined, for the caller to decode and JSON.parse
 * as usual (and for JSON.parse's error when the bytes are not JSON), when this would not pay or
 * not be exact: no long string, a long string that is a key, other parts too long, a top level
 * that is not an object, or anything wrong; and bytes that are not UTF-8, or a long string that is
 * not ASCII unless `utf8` says the bytes are UTF-8 (the text path decodes bad UTF-8 to replacement
 * characters, which the bytes kept would not say). `bytes` is read now only, and what is kept is a
 * copy, unless `owned` (the caller gives them up: they are kept as they are).
 */
export function parseLarge(
  bytes: Uint8Array<ArrayBuffer>,
  { owned = false, utf8 = false } = {},
): object | undefined {
  const n = bytes.length;
  let first = 0;
  while (isSpace(bytes[first]!)) first++;
  let last = n;
  while (last > first && isSpace(bytes[last - 1]!)) last--;
  if (bytes[first] !== 123 || bytes[last - 1] !== 125) return undefined; // "{", "}"
  /** Each long string's opening quote, closing quote, and whether it has escapes. */
  const spans: number[] = [];
  let rest = 0;
  let from = first;
  let oneLine = true;
  /** How deep in objects and arrays the walk is (1: in the message's own members). */
  let depth = 0;
  /**
   * Where the value of the top-level "id" member is; ids: how many such members; escapedKey: a
   * top-level key written with escapes (it could be another "id").
   */
  let idAt: [number, number] | undefined;
  let ids = 0;
  let escapedKey = false;
  for (let i = first; i < last;) {
    const byte = bytes[i]!;
    if (byte !== 34) {
      if (byte === 123 || byte === 91) depth++; // "{", "["
      else if (byte === 125 || byte === 93) depth--; // "}", "]"
      else if (byte === 10 || byte === 13) oneLine = false;
      i++;
      continue;
    }
    if (i - from + rest > REST_MAX) return undefined;
    const open = i;
    const close = stringEnd(bytes, open + 1, last);
    if (close === -1) return undefined;
    i = close + 1;
    if (depth === 1) {
      if (close - open === 3 && bytes[open + 1] === 105 && bytes[open + 2] === 100) {
        const at = valueAfterKey(bytes, i, last); // "id", if a colon follows (a key)
        if (at) {
          idAt = at;
          ids++;
        }
      } else if (scanned.escaped) {
        let next = i;
        while (isSpace(bytes[next]!)) next++;
        if (bytes[next] === 58) escapedKey = true;
      }
    }
    if (close - open - 1 < LONG_STRING) continue;
    if (!scanned.ascii && !utf8) return undefined;
    let next = i;
    while (isSpace(bytes[next]!)) next++;
    if (bytes[next] === 58) return undefined; // a key (":" follows)
    spans.push(open, close, scanned.escaped ? 1 : 0);
    rest += open - from;
    from = close + 1;
  }
  if (spans.length === 0 || last - from + rest > REST_MAX) return undefined;
  const parts: string[] = [];
  let at = first;
  for (let k = 0; k < spans.length; k += 3) {
    const part = strict(bytes.subarray(at, spans[k]));
    if (part === undefined) return undefined;
    if (MAY_HOLD_MARK.test(part)) return undefined;
    parts.push(part, `"${MARK}${k / 3}"`);
    at = spans[k + 1]! + 1;
  }
  const tail = strict(bytes.subarray(at, last));
  if (tail === undefined || MAY_HOLD_MARK.test(tail)) return undefined;
  parts.push(tail);
  const holders: [Record<string, unknown>, string, number][] = [];
  let value: unknown;
  try {
    value = JSON.parse(parts.join(""), function (this: Record<string, unknown>, key, member) {
      if (typeof member === "string" && member.startsWith(MARK)) {
        holders.push([this, key, Number(member.slice(MARK.length))]);
      }
      return member;
    });
  } catch {
    return undefined;
  }
  const kept = owned ? bytes.subarray(first, last) : bytes.slice(first, last);
  const id = ids === 1 && !escapedKey && idAt
    ? [idAt[0] - first, idAt[1] - first] as const
    : undefined;
  for (const [holder, key, index] of holders) {
    const open = spans[index * 3]! - first;
    const close = spans[index * 3 + 1]! - first;
    const escaped = spans[index * 3 + 2] === 1;
    const set = (member: unknown) => {
      Object.defineProperty(holder, key, {
        value: member,
        writable: true,
        enumerable: true,
        configurable: true,
      });
    };
    Object.defineProperty(holder, key, {
      enumerable: true,
      configurable: true,
      get() {
        const text = escaped
          ? JSON.parse(decoder.decode(kept.subarray(open, close + 1)))
          : decoder.decode(kept.subarray(open + 1, close));
        set(text);
        return text;
      },
      set,
    });
  }
  if (oneLine) KEPT.set(value as object, { bytes: kept, idAt: id });
  return value as object;
}

/** Bytes a JSON string holds as they are: 1 for ASCII, 2 for the bytes of other characters. */
const PLAIN = new Uint8Array(256).fill(1, 32, 128).fill(2, 128);
PLAIN[34] = PLAIN[92] = 0;
/** What stringEnd met in the string it last read. */
const scanned = { escaped: false, ascii: true };

/**
 * Where the JSON string whose text starts at `i` ends (its closing quote), or -1 when it is not
 * one (a control character, a bad escape, or no end before `last`). Sets `scanned`.
 */
function stringEnd(bytes: Uint8Array, i: number, last: number): number {
  scanned.escaped = false;
  scanned.ascii = true;
  for (;;) {
    while (i < last && PLAIN[bytes[i]!] === 1) i++;
    if (i >= last) return -1;
    const c = bytes[i]!;
    if (c === 34) return i;
    if (c >= 128) {
      scanned.ascii = false;
      i++;
    } else if (c === 92) {
      scanned.escaped = true;
      const next = bytes[i + 1]!;
      if (next === 117) { // \uXXXX
        for (let k = i + 2; k < i + 6; k++) if (!isHex(bytes[k]!)) return -1;
        i += 6;
      } else if (ESCAPES.has(next)) {
        i += 2;
      } else {
        return -1;
      }
    } else {
      return -1;
    }
  }
}

const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * `bytes` as text, or undefined when they are not UTF-8: the text path would decode them to
 * replacement characters, and the bytes kept would not say the same.
 */
function strict(bytes: Uint8Array): string | undefined {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Where the value of a member ends up, given the end of its key at `i`: from its first byte to just
 * after its last, for a string, a number or a literal (an id); undefined when no colon follows (the
 * string was a value) or the value is anything else.
 */
function valueAfterKey(bytes: Uint8Array, i: number, last: number): [number, number] | undefined {
  while (isSpace(bytes[i]!)) i++;
  if (bytes[i] !== 58) return undefined;
  i++;
  while (isSpace(bytes[i]!)) i++;
  const start = i;
  if (bytes[i] === 34) {
    const close = stringEnd(bytes, i + 1, last);
    return close === -1 ? undefined : [start, close + 1];
  }
  while (i < last && !isSpace(bytes[i]!) && bytes[i] !== 44 && bytes[i] !== 125) {
    if (bytes[i] === 123 || bytes[i] === 91 || bytes[i] === 34) return undefined;
    i++;
  }
  return i > start ? [start, i] : undefined;
}

function isSpace(byte: number): boolean {
  return byte === 32 || byte === 10 || byte === 13 || byte === 9;
}

function isHex(byte: number): boolean {
  return (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 70) || (byte >= 97 && byte <= 102);
}

const encoder = new TextEncoder();
/** Where parseLargePieces encodes a message, reused (memory in use costs no page faults). */
let scratch = new Uint8Array(0);
/** The largest scratch memory kept for the next message. */
const SCRATCH_KEEP = 4 * 1024 * 1024;

/**
 * parseLargeMessage of the text `pieces` hold together (a server's message), without joining them
 * into a string of its size: they are encoded into memory of ours, reused, then read as bytes
 * (UTF-8, whatever they hold).
 */
function parseLargePieces(pieces: readonly string[]): JSONRPCMessage | undefined {
  let length = 0;
  for (const piece of pieces) length += piece.length;
  // Room for ASCII and a few wider characters, and more when they are not so few.
  let memory = scratch.length > length + (length >> 3)
    ? scratch
    : new Uint8Array(length + (length >> 3) + 16);
  let at = 0;
  let left = length;
  for (const piece of pieces) {
    let { read, written } = encoder.encodeInto(piece, memory.subarray(at));
    if (read < piece.length) {
      const grown = new Uint8Array(at + written + (left - read) * 3);
      grown.set(memory.subarray(0, at + written));
      memory = grown;
      const rest = encoder.encodeInto(piece.slice(read), memory.subarray(at + written));
      written += rest.written;
    }
    at += written;
    left -= piece.length;
  }
  if (memory.length <= SCRATCH_KEEP) scratch = memory;
  return parseLargeMessage(memory.subarray(0, at), { utf8: true });
}

/**
 * One JSON-RPC message from large bytes, by parseLarge, when it takes them and the message passes
 * checkMessage (`strict` for a client's); else undefined, for the caller's text path to parse and
 * report.
 */
export function parseLargeMessage(
  bytes: Uint8Array<ArrayBuffer>,
  { strict = false, ...options }: { strict?: boolean; owned?: boolean; utf8?: boolean } = {},
): JSONRPCMessage | undefined {
  const value = parseLarge(bytes, options);
  return value !== undefined && checkMessage(value, strict) === undefined
    ? value as JSONRPCMessage
    : undefined;
}

/** A message a server sent as the text `pieces` hold together (see parseServerMessage). */
export function parseServerPieces(
  pieces: readonly string[],
): ReturnType<typeof parseServerMessage> {
  const message = parseLargePieces(pieces);
  return message ? { message } : parseServerMessage(pieces.join(""));
}

/** A message a server sent, from its JSON text: the message, or what is wrong with it. */
export function parseServerMessage(
  text: string,
): { message: JSONRPCMessage; problem?: undefined } | { message?: undefined; problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { problem: `invalid JSON (${error instanceof Error ? error.message : error})` };
  }
  const problem = checkMessage(value);
  if (problem !== undefined) return { problem: `an invalid message: ${problem}` };
  keepText(value, text);
  return { message: value as JSONRPCMessage };
}

/** The members a JSON-RPC 2.0 message may have. */
const MEMBERS = new Set(["jsonrpc", "id", "method", "params", "result", "error"]);

function isValidId(id: unknown): boolean {
  return typeof id === "string" || (typeof id === "number" && Number.isFinite(id));
}
