// Our Streamable HTTP client transport (MCP 2025-11-25, client side): POSTs each message, reads
// the JSON or event-stream answer, keeps the GET stream open after `initialized`, and resumes a
// dropped stream with Last-Event-ID. Messages are forwarded, not re-validated by schema; a request
// whose stream ends unanswered and cannot be resumed is answered with an error, never left hanging.

import { ProxyError } from "../errors.ts";
import {
  checkMessage,
  errorResponse,
  isRequest,
  isResponse,
  jsonBody,
  type JSONRPCMessage,
  keepText,
  LARGE_MESSAGE,
  parseLarge,
  type RequestId,
  UPSTREAM_ERROR,
} from "../jsonrpc.ts";
import { log } from "../log.ts";
import type { FetchLike } from "../sdk.ts";
import { fetchWithinOrigin, mediaType, refusal, refusalText } from "./http_request.ts";
import { messageOf, readEvents, SseParser, Stop } from "./sse_parser.ts";
import type { UpstreamExtra } from "./child.ts";

/** How a dropped event stream is reopened; the server's `retry` field overrides the delay. */
export interface Reconnection {
  initialDelayMs: number;
  maxDelayMs: number;
  growFactor: number;
  maxRetries: number;
}

/** An HTTP answer the transport cannot use; `status` is -1 for one with the wrong content type. */
export class StreamableHttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "StreamableHttpError";
    this.status = status;
  }
}

export class StreamableHttpClient {
  /** `extra.relatedRequestId`: the request on whose POST stream the message came. */
  onmessage?: (message: JSONRPCMessage, extra?: UpstreamExtra) => void;
  onerror?: (error: Error) => void;
  onclose?: () => void;
  #url: URL;
  #fetch: FetchLike;
  #reconnection: Reconnection;
  #abort = new AbortController();
  /** The session's own GET stream; aborted when the client is retired. */
  #listening = new AbortController();
  /** Stops the reading of the session's own GET stream (with #listening). */
  #listeningStop = new Stop();
  #timers = new Set<ReturnType<typeof setTimeout>>();
  /** Requests whose event stream is read (or resumed); stopping one lets that stream go. */
  #streams = new Map<RequestId, Stop>();
  /** Requests accepted with 202, whose answer is to come on the GET stream. */
  #onGet = new Set<RequestId>();
  #sessionId?: string;
  #protocolVersion?: string;
  /** The server's last `retry` field: how long to wait before reopening a stream. */
  #retryMs?: number;
  #closed = false;
  /** Replaced by a new session: POSTs in flight finish, the GET stream is not reopened. */
  #retired = false;

  constructor(url: URL, options: { fetch: FetchLike; reconnection: Reconnection }) {
    this.#url = url;
    this.#fetch = options.fetch;
    this.#reconnection = options.reconnection;
  }

  get sessionId(): string | undefined {
    return this.#sessionId;
  }

  setProtocolVersion(version: string): void {
    this.#protocolVersion = version;
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * POSTs one message. Resolves once the server has taken it (its answer, if any, arrives through
   * onmessage); rejects with a StreamableHttpError when the server refused it.
   */
  async send(message: JSONRPCMessage): Promise<void> {
    const headers = this.#headers("application/json, text/event-stream");
    headers["content-type"] = "application/json";
    const response = await this.#request({
      method: "POST",
      headers,
      body: jsonBody(message),
    });
    const session = response.headers.get("mcp-session-id");
    if (session) this.#sessionId = session;
    if (!response.ok) {
      const text = await refusalText(response);
      throw new StreamableHttpError(response.status, refusal("POST", response, text, this.#url));
    }
    if (!isRequest(message)) {
      await response.body?.cancel().catch(() => {});
      if ("method" in message && message.method === "notifications/initialized") this.#listen();
      return;
    }
    if (response.status === 202) {
      // Not what the specification asks for, but some servers answer on the GET stream instead;
      // a retired client has none left, so that answer can never arrive.
      await response.body?.cancel().catch(() => {});
      if (this.#retired) return this.#lost(message.id, ENDED, false);
      this.#onGet.add(message.id);
      return;
    }
    const type = mediaType(response.headers.get("content-type"));
    if (type === "text/event-stream") {
      this.#streams.set(message.id, new Stop());
      return void this.#read(response.body, message.id).catch((error) => this.#failed(error));
    }
    if (type === "application/json") {
      const bytes = await response.bytes();
      if (bytes.length >= LARGE_MESSAGE) {
        // A large answer with long strings: no text of it is made (they stay bytes until read).
        const large = parseLarge(bytes, { owned: true });
        if (large !== undefined) return this.#json(large, message.id);
      }
      const text = decoder.decode(bytes);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error);
        throw new StreamableHttpError(-1, `the server's JSON answer is not valid JSON (${why})`);
      }
      keepText(body, text);
      return this.#json(body, message.id);
    }
    await response.body?.cancel().catch(() => {});
    throw new StreamableHttpError(
      -1,
      `the POST was answered with content type "${
        type ?? "none"
      }", expected JSON or an event stream`,
    );
  }

  /**
   * Request `id` was cancelled (or timed out): its answer is no longer wanted, so its event stream
   * is let go and never resumed, and no error is made up for it.
   */
  forget(id: RequestId): void {
    this.#onGet.delete(id);
    const stream = this.#streams.get(id);
    if (!stream) return;
    this.#streams.delete(id);
    stream.stop();
  }

  /**
   * The session is being replaced: its GET stream is let go and never reopened, but requests
   * already sent still get their answers (a POST cut off here might have run on the server).
   */
  retire(): void {
    this.#retired = true;
    this.#listening.abort();
    this.#listeningStop.stop();
    // Answers that were to come on the GET stream never will.
    const waiting = [...this.#onGet];
    this.#onGet.clear();
    for (const id of waiting) this.#lost(id, ENDED, false);
  }

  /** Ends the session with DELETE (a 405 means the server does not allow it: fine). */
  async terminateSession(): Promise<void> {
    if (!this.#sessionId) return;
    const response = await this.#request({ method: "DELETE", headers: this.#headers() });
    await response.body?.cancel();
    if (!response.ok && response.status !== 405) {
      throw new StreamableHttpError(response.status, refusal("DELETE", response, "", this.#url));
    }
    this.#sessionId = undefined;
  }

  /** Stops everything: requests and streams are aborted, no stream is reopened. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#abort.abort();
    this.#streams.clear();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.onclose?.();
    return Promise.resolve();
  }

  #headers(accept?: string): Record<string, string> {
    const headers: Record<string, string> = {};
    if (accept) headers.accept = accept;
    if (this.#sessionId) headers["mcp-session-id"] = this.#sessionId;
    if (this.#protocolVersion) headers["mcp-protocol-version"] = this.#protocolVersion;
    return headers;
  }

  /** One request to the endpoint; redirects are followed only within its origin. */
  #request(init: RequestInit, signal = this.#abort.signal): Promise<Response> {
    return fetchWithinOrigin(this.#fetch, this.#url, { ...init, signal });
  }

  /** A JSON answer: its messages are delivered; the request must be among those answered. */
  #json(body: unknown, request: RequestId): void {
    let answered = false;
    for (const value of Array.isArray(body) ? body : [body]) {
      if (answers(value, request) && checkMessage(value) === undefined) answered = true;
      this.#deliver(value);
    }
    if (!answered) this.#lost(request, "the server's JSON answer did not answer it", false);
  }

  #deliver(value: unknown): void {
    const problem = checkMessage(value);
    if (problem === undefined) return this.onmessage?.(value as JSONRPCMessage);
    this.onerror?.(new ProxyError("upstream", `the server sent an invalid message: ${problem}`));
  }

  /** Our own failure while reading a stream: reported, never an unhandled rejection. */
  #failed(error: unknown): void {
    this.onerror?.(error instanceof Error ? error : new Error(String(error)));
  }

  /** Answers a request the server will never answer, with an error, now. */
  #lost(request: RequestId, why: string, streamed = true): void {
    // A streamed request no longer held was answered or forgotten: nothing is made up for it.
    if (this.#closed || (streamed && !this.#streams.delete(request))) return;
    this.onmessage?.(errorResponse(request, UPSTREAM_ERROR, `${why}; retry the request`));
  }

  /** Opens the GET stream for the server's own messages (after initialized). */
  #listen(): void {
    this.#open(undefined, undefined).catch((error) => this.#reopenAfter(error, undefined));
  }

  /**
   * GET with Accept: text/event-stream: the session's own stream (`request` undefined), or the
   * resumption of a request's stream from `lastEventId`.
   */
  async #open(
    lastEventId: string | undefined,
    request: RequestId | undefined,
    attempt = 0,
  ): Promise<void> {
    const headers = this.#headers("text/event-stream");
    if (lastEventId !== undefined) headers["last-event-id"] = lastEventId;
    const signal = request === undefined
      ? AbortSignal.any([this.#abort.signal, this.#listening.signal])
      : this.#abort.signal;
    const response = await this.#request({ method: "GET", headers }, signal);
    if (response.ok && mediaType(response.headers.get("content-type")) === "text/event-stream") {
      return void this.#read(response.body, request, lastEventId, attempt)
        .catch((error) => this.#failed(error));
    }
    // A refusal's body says why (shown, cut short); a wrong content type's is not read.
    const text = await refusalText(response);
    if (response.status === 405) {
      // The server offers no GET stream: nothing to listen to, and nothing to resume from.
      if (request !== undefined) {
        this.#lost(request, "the response stream ended and the server cannot resume it");
      }
      return;
    }
    const status = response.ok ? -1 : response.status;
    throw new StreamableHttpError(status, refusal("GET", response, text, this.#url));
  }

  /**
   * Reads one event stream to its end, delivering its messages. The session's stream is always
   * reopened; a request's stream is resumed while it has an event id and no answer yet.
   */
  async #read(
    body: ReadableStream<Uint8Array> | null,
    request: RequestId | undefined,
    resumedFrom?: string,
    attempt = 0,
  ): Promise<void> {
    let answered = false;
    /** Messages the stream brought (priming events, with no data, do not count). */
    let messages = 0;
    const stop = request === undefined ? this.#listeningStop : this.#streams.get(request);
    if (!stop || stop.stopped) return void await body?.cancel().catch(() => {});
    const related = request === undefined ? undefined : { relatedRequestId: request };
    const parser = new SseParser((event) => {
      const parsed = event.event === "message" ? messageOf(event) : undefined;
      if (!parsed) return;
      messages++;
      const { message, problem } = parsed;
      if (!message) return this.onerror?.(new ProxyError("upstream", `the server sent ${problem}`));
      if (request !== undefined && answers(message, request)) answered = true;
      else if (request === undefined && isResponse(message)) this.#onGet.delete(message.id!);
      try {
        this.onmessage?.(message, related);
      } catch (error) {
        // Ours, not the stream's: the next events are still read.
        this.#failed(error);
      }
    });
    parser.lastEventId = resumedFrom;
    // After its answer a request's stream has nothing more for us (the server SHOULD end it).
    const problem = await readEvents(body, parser, { stop, done: () => answered });
    if (this.#closed || stop.stopped) return;
    if (parser.retryMs !== undefined) this.#retryMs = parser.retryMs;
    if (problem !== undefined) {
      this.onerror?.(
        new ProxyError("upstream", "an event stream from the server broke", { cause: problem }),
      );
    }
    // A stream that brought nothing new is reopened later each time (backoff); one the server
    // ended cleanly never counts toward giving up (servers may end streams to be polled).
    const broke = problem !== undefined;
    if (request === undefined) {
      return this.#reopen(parser.lastEventId, undefined, messages > 0 ? 0 : attempt + 1, broke);
    }
    if (answered) return void this.#streams.delete(request);
    const progressed = parser.lastEventId !== resumedFrom;
    if (parser.lastEventId) {
      return this.#reopen(parser.lastEventId, request, progressed ? 0 : attempt + 1, broke);
    }
    this.#lost(request, "the server ended the response stream without answering");
  }

  /**
   * Reopens a stream after a delay: the server's `retry`, else exponential backoff over
   * `attempt`; after maxRetries attempts a failure (not a clean end) gives up.
   */
  #reopen(
    lastEventId: string | undefined,
    request: RequestId | undefined,
    attempt: number,
    failed = true,
  ): void {
    if (this.#closed || (request === undefined && this.#retired)) return;
    const { initialDelayMs, maxDelayMs, growFactor, maxRetries } = this.#reconnection;
    if (failed && attempt >= maxRetries) {
      const why = `gave up reopening the event stream after ${maxRetries} attempt(s)`;
      this.onerror?.(new ProxyError("upstream", why));
      if (request !== undefined) this.#lost(request, why);
      else log.warn(`${why}; the server's own messages will not arrive`);
      return;
    }
    const backoff = Math.min(initialDelayMs * growFactor ** attempt, maxDelayMs);
    // The server's `retry` is its polling pace, honored; but the session's own stream, reopened
    // for as long as the session lasts, is never reopened faster than initialDelayMs while it
    // brings nothing (a server ending it at once with retry: 0 would otherwise get a busy loop).
    const delay = this.#retryMs === undefined
      ? backoff
      : request === undefined && attempt > 0
      ? Math.max(this.#retryMs, initialDelayMs)
      : Math.max(this.#retryMs, MIN_REOPEN_MS);
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (request === undefined ? this.#retired : !this.#streams.has(request)) return;
      this.#open(lastEventId, request, attempt).catch((error) =>
        this.#reopenAfter(error, request, lastEventId, attempt + 1)
      );
    }, delay);
    this.#timers.add(timer);
  }

  /**
   * A GET that failed: reported, then tried again unless the server refused it for good (a 4xx
   * other than the transient ones; a 404 means the session is gone, which the owner handles by
   * starting a new one).
   */
  #reopenAfter(error: unknown, request: RequestId | undefined, lastEventId?: string, attempt = 1) {
    if (this.#closed || (request === undefined && this.#retired)) return;
    this.#failed(error);
    const status = error instanceof StreamableHttpError ? error.status : 0;
    const refused = status === -1 || (status >= 300 && status < 500 && !TRANSIENT.has(status));
    if (!refused) return this.#reopen(lastEventId, request, attempt);
    if (request !== undefined) {
      this.#lost(request, "the server refused to resume the response stream");
    } else if (status !== 404) {
      log.warn(`${(error as Error).message}; the server's own messages will not arrive`);
    }
  }
}

/** Decodes JSON answers as Response.text() does (a byte order mark dropped). */
const decoder = new TextDecoder();
const ENDED = "the session ended before its answer came";
/** The shortest wait before reopening a stream, whatever the server's `retry` (even 0). */
const MIN_REOPEN_MS = 10;

/** Refusals of a GET that may pass: timeout, conflict, too early, too many requests. */
const TRANSIENT = new Set([408, 409, 425, 429]);

/** Whether `value` is the response (result or error) to `request`. */
function answers(value: unknown, request: RequestId): boolean {
  if (typeof value !== "object" || value === null) return false;
  const record = value as Record<string, unknown>;
  return record.id === request && !("method" in record) &&
    ("result" in record || "error" in record);
}
