// The Streamable HTTP server transport of one session (or of one stateless request): POSTed
// messages in, answers out on an SSE stream per POST, the GET stream, resumption by Last-Event-ID
// and DELETE. Our own rather than the SDK's, which validates every message with Zod on the way in
// and out; a proxy forwards messages that body.ts has already checked, and serializes each once.

import type { JSONRPCMessage, RequestId } from "../jsonrpc.ts";
import {
  chunksSize,
  isRequest,
  isResponse,
  jsonChunks,
  reusedIdReason,
  SESSION_NOT_FOUND,
} from "../jsonrpc.ts";
import { SUPPORTED_PROTOCOL_VERSIONS } from "../protocol.ts";
import type { Transport, TransportSendOptions } from "../sdk.ts";
import { Deadlines } from "../deadlines.ts";
import { framed } from "../lines.ts";
import { jsonRpcErrorResponse } from "./body.ts";
import type { BoundedEventStore } from "./event_store.ts";

export interface StreamableOptions {
  /** Stateful: makes the session's id at initialize. Without it, stateless (no session checks). */
  sessionId?: () => string;
  /** Held events for resumption (stateful only). */
  events?: BoundedEventStore;
  /** Called with the new session's id, before initialize reaches the bridge. */
  onsessioninitialized?: (id: string) => void;
  /** Comment lines on open streams this often, so proxies keep them open (default 15 s). */
  keepAliveMs?: number;
  /**
   * How long a lone request's POST waits for its answer before it becomes an event stream
   * (default 100 ms; 0: every POST with a request is a stream at once). An answer that comes
   * first and within this time goes back as one JSON body: no stream to set up on either side.
   * A longer call, or one that sends progress or asks the client something first, gets the
   * stream (with its priming event id, so it can be resumed).
   */
  streamAfterMs?: number;
  /** A POST stream was dropped before these requests were answered (the client stopped waiting). */
  onabandon?: (ids: RequestId[]) => void;
  /**
   * DELETE: ends the session. Without it the transport closes at once; with it (the bridge's
   * close), requests in flight are answered first and the bridge closes the transport.
   */
  ondelete?: () => void;
}

/**
 * Most bytes a connection may have waiting for a client that does not read them; past that the
 * connection is dropped (its events stay held for a Last-Event-ID resume) rather than buffered.
 */
export const MAX_UNREAD_BYTES = 8 * 1024 * 1024;

/** The most messages in one POSTed batch. */
const MAX_BATCH = 100;
/** The protocol version assumed when a request names none (as the spec says). */
const DEFAULT_PROTOCOL_VERSION = "2025-03-26";
/** From this protocol version on, a POST stream opens with an event id, so it can be resumed. */
const PRIMING_SINCE = "2025-11-25";
const GET_STREAM = "_GET_stream";
const KEEPALIVE = new TextEncoder().encode(": keepalive\n\n");
const encoder = new TextEncoder();

/** One SSE stream: a POST's (answers to its requests) or the GET stream. */
interface Stream {
  /** The open connection, if the client is still reading it. */
  controller?: ReadableStreamDefaultController<Uint8Array>;
  /** Requests of this POST not answered yet; the stream ends when none are left. */
  pending: Set<RequestId>;
  /** The biggest chunk queued since the client last caught up (it may take that long to read). */
  biggest?: number;
  /** A lone request's POST with no response yet: a quick, plain answer goes back as JSON. */
  hold?: Hold;
}

interface Hold {
  resolve: (response: Response) => void;
  /** The protocol version the POST was made with (whether its stream starts with an event id). */
  version: string;
}

const STREAM_AFTER_MS = 100;

export class StreamableServerTransport implements Transport {
  sessionId?: string;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  #options: StreamableOptions;
  #initialized = false;
  #closed = false;
  #streams = new Map<string, Stream>();
  #requests = new Map<RequestId, string>();
  #keepalive?: ReturnType<typeof setInterval>;
  /** How long a lone request's POST is held for a JSON answer (0: never). */
  #holdMs: number;
  /** The held POSTs, by stream id: each becomes an event stream when its time is up. */
  #held: Deadlines<string>;

  constructor(options: StreamableOptions = {}) {
    this.#options = options;
    this.#holdMs = options.streamAfterMs ?? STREAM_AFTER_MS;
    this.#held = new Deadlines(this.#holdMs, (streamId) => {
      const stream = this.#streams.get(streamId);
      if (stream) this.#release(streamId, stream);
    });
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  /** Answers one HTTP request of this session; `parsedBody` is the checked body of a POST. */
  handleRequest(
    req: Request,
    options: { parsedBody?: unknown } = {},
  ): Response | Promise<Response> {
    if (this.#closed) return notFound();
    switch (req.method) {
      case "POST":
        return this.#post(req, options.parsedBody);
      case "GET":
        return this.#get(req);
      case "DELETE":
        return this.#delete(req);
      default:
        return jsonRpcErrorResponse(405, -32000, "Method not allowed.", {
          allow: "GET, POST, DELETE",
        });
    }
  }

  send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    const answer = isResponse(message);
    const related = answer ? (message as { id: RequestId }).id : options?.relatedRequestId;
    const streamId = related === undefined ? GET_STREAM : this.#requests.get(related);
    if (streamId === undefined) {
      return Promise.reject(new Error(`no open request ${String(related)} to answer on`));
    }
    const stream = this.#streams.get(streamId);
    if (answer && streamId === GET_STREAM) {
      return Promise.reject(new Error("an answer cannot go on the GET stream"));
    }
    const json = jsonChunks(message);
    if (stream?.hold) {
      if (answer) return this.#answerHeld(streamId, stream, json);
      this.#release(streamId, stream);
    }
    const events = this.#options.events;
    const eventId = events?.append(streamId, message, chunksSize(json));
    if (stream?.controller) {
      const id = eventId === undefined ? "" : `id: ${eventId}\n`;
      write(stream, ...framed(`event: message\n${id}data: `, json, "\n\n"));
    }
    if (answer && stream) {
      this.#requests.delete(related!);
      stream.pending.delete(related!);
      if (stream.pending.size === 0) this.#end(streamId);
    }
    return Promise.resolve();
  }

  /**
   * The client cancelled request `id`, so no answer will come (the server SHOULD NOT send one):
   * its stream ends once nothing else is pending on it, instead of staying open until the
   * session ends. A held POST gets 202, as for a notification.
   */
  forget(id: RequestId): void {
    const streamId = this.#requests.get(id);
    if (streamId === undefined) return;
    this.#requests.delete(id);
    const stream = this.#streams.get(streamId);
    if (!stream) return;
    stream.pending.delete(id);
    if (stream.pending.size > 0) return;
    this.#takeHold(streamId, stream)?.resolve(new Response(null, { status: 202 }));
    this.#end(streamId);
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    clearInterval(this.#keepalive);
    this.#held.clear();
    for (const streamId of [...this.#streams.keys()]) this.#end(streamId);
    this.#requests.clear();
    this.onclose?.();
    return Promise.resolve();
  }

  #post(req: Request, body: unknown): Response | Promise<Response> {
    const accept = req.headers.get("accept") ?? "";
    if (!accept.includes("application/json") || !accept.includes("text/event-stream")) {
      return jsonRpcErrorResponse(
        406,
        -32000,
        "Not Acceptable: Client must accept both application/json and text/event-stream",
      );
    }
    const messages = (Array.isArray(body) ? body : [body]) as JSONRPCMessage[];
    if (messages.length > MAX_BATCH) {
      return jsonRpcErrorResponse(
        400,
        -32600,
        `Invalid Request: Batch must not exceed ${MAX_BATCH} messages`,
      );
    }
    const initialize = messages.find((m) => isRequest(m) && m.method === "initialize") as
      | { params?: { protocolVersion?: unknown } }
      | undefined;
    if (initialize) {
      if (this.#initialized && this.sessionId !== undefined) {
        return jsonRpcErrorResponse(400, -32600, "Invalid Request: Server already initialized");
      }
      if (messages.length > 1) {
        return jsonRpcErrorResponse(
          400,
          -32600,
          "Invalid Request: Only one initialization request is allowed",
        );
      }
      this.#initialized = true;
      this.sessionId = this.#options.sessionId?.();
      if (this.sessionId !== undefined) this.#options.onsessioninitialized?.(this.sessionId);
    } else {
      const refused = this.#checkSession(req) ?? checkProtocolVersion(req);
      if (refused) return refused;
    }
    const requests = messages.filter(isRequest);
    const reused = requests.find((request, i) =>
      this.#requests.has(request.id) || requests.findIndex((r) => r.id === request.id) < i
    );
    if (reused) return jsonRpcErrorResponse(400, -32600, reusedIdReason(reused.id));
    if (requests.length === 0) {
      for (const message of messages) this.onmessage?.(message);
      return new Response(null, { status: 202 });
    }
    const version = typeof initialize?.params?.protocolVersion === "string"
      ? initialize.params.protocolVersion
      : req.headers.get("mcp-protocol-version") ?? DEFAULT_PROTOCOL_VERSION;
    const streamId = crypto.randomUUID();
    const stream: Stream = { pending: new Set(requests.map((request) => request.id)) };
    for (const request of requests) this.#requests.set(request.id, streamId);
    this.#streams.set(streamId, stream);
    // Not for a batch, even of one: its answer must be an array, as JSON-RPC says.
    if (!Array.isArray(body) && this.#holdMs > 0) {
      return new Promise<Response>((resolve) => {
        stream.hold = { resolve, version };
        this.#held.start(streamId);
        this.onmessage?.(messages[0]!);
      });
    }
    const readable = this.#open(streamId, stream);
    const events = this.#options.events;
    if (events && version >= PRIMING_SINCE) {
      write(stream, encoder.encode(`id: ${events.append(streamId, {}, 2)}\ndata: \n\n`));
    }
    for (const message of messages) this.onmessage?.(message);
    return this.#sse(readable);
  }

  /** The held POST's answer came first and soon: one JSON body. */
  #answerHeld(
    streamId: string,
    stream: Stream,
    json: string | Uint8Array<ArrayBuffer>[],
  ): Promise<void> {
    const hold = this.#takeHold(streamId, stream)!;
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.sessionId !== undefined) headers["mcp-session-id"] = this.sessionId;
    hold.resolve(new Response(responseBody(json), { status: 200, headers }));
    this.#end(streamId);
    return Promise.resolve();
  }

  /** The held POST becomes an event stream (it is taking a while, or more than an answer comes). */
  #release(streamId: string, stream: Stream): void {
    const hold = this.#takeHold(streamId, stream);
    if (!hold) return;
    const readable = this.#open(streamId, stream);
    const events = this.#options.events;
    if (events && hold.version >= PRIMING_SINCE) {
      write(stream, encoder.encode(`id: ${events.append(streamId, {}, 2)}\ndata: \n\n`));
    }
    hold.resolve(this.#sse(readable));
  }

  #get(req: Request): Response {
    const accept = req.headers.get("accept") ?? "";
    if (!accept.includes("text/event-stream")) {
      return jsonRpcErrorResponse(
        406,
        -32000,
        "Not Acceptable: Client must accept text/event-stream",
      );
    }
    const refused = this.#checkSession(req) ?? checkProtocolVersion(req);
    if (refused) return refused;
    const lastEventId = req.headers.get("last-event-id");
    const events = this.#options.events;
    if (events && lastEventId) return this.#resume(events, lastEventId);
    if (this.#streams.get(GET_STREAM)?.controller) {
      return jsonRpcErrorResponse(
        409,
        -32000,
        "Conflict: Only one SSE stream is allowed per session",
      );
    }
    const stream: Stream = { pending: new Set() };
    this.#streams.set(GET_STREAM, stream);
    return this.#sse(this.#open(GET_STREAM, stream));
  }

  /**
   * A client reconnecting with Last-Event-ID: the events it missed on that stream, then the
   * stream goes on on this connection (or ends at once, if everything on it is answered).
   */
  #resume(events: BoundedEventStore, lastEventId: string): Response {
    const { streamId, missed } = events.after(lastEventId);
    const previous = this.#streams.get(streamId);
    if (previous?.controller) {
      // The old connection is stale (the client would not resume a stream it still reads).
      const old = previous.controller;
      previous.controller = undefined;
      closeQuietly(old);
    }
    const stream: Stream = previous ?? { pending: new Set() };
    this.#streams.set(streamId, stream);
    const readable = this.#open(streamId, stream);
    for (const [id, message] of missed) {
      const head = `event: message\nid: ${id}\ndata: `;
      write(stream, ...framed(head, jsonChunks(message), "\n\n"));
    }
    if (streamId !== GET_STREAM && stream.pending.size === 0) this.#end(streamId);
    return this.#sse(readable);
  }

  #delete(req: Request): Response {
    const refused = this.#checkSession(req) ?? checkProtocolVersion(req);
    if (refused) return refused;
    if (this.#options.ondelete) this.#options.ondelete();
    else void this.close();
    return new Response(null, { status: 200 });
  }

  #checkSession(req: Request): Response | undefined {
    if (!this.#options.sessionId) return undefined;
    if (!this.#initialized) {
      return jsonRpcErrorResponse(400, -32000, "Bad Request: Server not initialized");
    }
    const id = req.headers.get("mcp-session-id");
    if (!id) {
      return jsonRpcErrorResponse(400, -32000, "Bad Request: Mcp-Session-Id header is required");
    }
    return id === this.sessionId ? undefined : notFound();
  }

  /** A readable for `stream`'s connection; its cancel (the client left) detaches it. */
  #open(streamId: string, stream: Stream): ReadableStream<Uint8Array> {
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const readable = new ReadableStream<Uint8Array>({
      start: (c) => void (controller = c),
      // Called once the client has read the queue down below its bound: it keeps up.
      pull: () => void (stream.biggest = 0),
      cancel: () => {
        if (stream.controller !== controller) return;
        stream.controller = undefined;
        if (streamId === GET_STREAM && this.#streams.get(GET_STREAM) === stream) {
          this.#streams.delete(GET_STREAM);
        }
        if (stream.pending.size > 0) this.#options.onabandon?.([...stream.pending]);
      },
    }, new ByteLengthQueuingStrategy({ highWaterMark: MAX_UNREAD_BYTES }));
    stream.controller = controller;
    this.#armKeepalive();
    return readable;
  }

  /** Closes the stream's connection and forgets it and its requests. */
  #end(streamId: string): void {
    const stream = this.#streams.get(streamId);
    if (!stream) return;
    // A held POST still gets its (empty, ending) stream: the client sees it end unanswered.
    this.#release(streamId, stream);
    this.#streams.delete(streamId);
    for (const id of stream.pending) this.#requests.delete(id);
    if (stream.controller) closeQuietly(stream.controller);
    stream.controller = undefined;
  }

  /** The stream's held POST, if any, no longer held: the caller answers it. */
  #takeHold(streamId: string, stream: Stream): Hold | undefined {
    const hold = stream.hold;
    if (!hold) return undefined;
    stream.hold = undefined;
    this.#held.stop(streamId);
    return hold;
  }

  /** One timer per session sends keep-alives on every open stream. */
  #armKeepalive(): void {
    const every = this.#options.keepAliveMs ?? 15_000;
    if (this.#keepalive !== undefined || this.#closed || !(every > 0)) return;
    this.#keepalive = setInterval(() => {
      for (const stream of this.#streams.values()) if (stream.controller) write(stream, KEEPALIVE);
    }, every);
    Deno.unrefTimer(this.#keepalive);
  }

  #sse(readable: ReadableStream<Uint8Array>): Response {
    const headers: Record<string, string> = {
      "content-type": "text/event-stream",
      "cache-control": "no-cache, no-transform",
      "x-accel-buffering": "no",
    };
    if (this.sessionId !== undefined) headers["mcp-session-id"] = this.sessionId;
    return new Response(readable, { status: 200, headers });
  }
}

/**
 * A JSON answer as a Response body. Bytes (a message kept as it came) go as a stream of
 * themselves: a Response copies a byte array it is given, into fresh memory for each large one.
 */
function responseBody(json: string | Uint8Array<ArrayBuffer>[]): BodyInit {
  if (typeof json === "string") return json;
  if (json.length === 1 && json[0]!.length < 64 * 1024) return json[0]!;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of json) controller.enqueue(chunk);
      controller.close();
    },
  });
}

/**
 * Writes to the stream's connection; a connection that cannot take it, or whose client has left
 * MAX_UNREAD_BYTES unread, is dropped (what it missed stays in the event store).
 */
function write(stream: Stream, ...chunks: Uint8Array[]): void {
  const controller = stream.controller;
  if (!controller) return;
  try {
    if (enqueueIfRead(controller, stream, chunks)) return;
    controller.error(new Error("the client is not reading this stream"));
  } catch {
    // Closed or cancelled already.
  }
  stream.controller = undefined;
}

/**
 * Queues a message (its `chunks`) for the client, unless it has left MAX_UNREAD_BYTES unread, or
 * more than the biggest message queued since it last caught up (one big message may take a while
 * to read): then false, and nothing is queued. `state.biggest` is reset by the stream's pull,
 * when the client has caught up.
 */
export function enqueueIfRead(
  controller: ReadableStreamDefaultController<Uint8Array>,
  state: { biggest?: number },
  chunks: readonly Uint8Array[],
): boolean {
  const queued = MAX_UNREAD_BYTES - (controller.desiredSize ?? 0);
  if (queued >= Math.max(MAX_UNREAD_BYTES, state.biggest ?? 0)) return false;
  let size = 0;
  for (const bytes of chunks) size += bytes.length;
  state.biggest = Math.max(state.biggest ?? 0, size);
  for (const bytes of chunks) controller.enqueue(bytes);
  return true;
}

function closeQuietly(controller: ReadableStreamDefaultController<Uint8Array>): void {
  try {
    controller.close();
  } catch {
    // Already closed or cancelled by the client.
  }
}

function checkProtocolVersion(req: Request): Response | undefined {
  const version = req.headers.get("mcp-protocol-version");
  if (version === null || SUPPORTED_PROTOCOL_VERSIONS.includes(version)) return undefined;
  return jsonRpcErrorResponse(
    400,
    -32000,
    `Bad Request: Unsupported protocol version: ${version} (supported versions: ` +
      `${SUPPORTED_PROTOCOL_VERSIONS.join(", ")})`,
  );
}

function notFound(): Response {
  return jsonRpcErrorResponse(404, SESSION_NOT_FOUND, "Session not found");
}
