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
const KEPT = new WeakMap<object, { text: string; bytes?: Uint8Array<ArrayBuffer> }>();
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
  return KEPT.get(message)?.text ?? JSON.stringify(message);
}

/** `message` to send as a whole: the bytes it arrived as, if kept, else its JSON text. */
export function jsonBody(message: JSONRPCMessage): string | Uint8Array<ArrayBuffer> {
  const kept = KEPT.get(message);
  return kept?.bytes ?? kept?.text ?? JSON.stringify(message);
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
