// Our client for the legacy HTTP+SSE transport (MCP 2024-11-05): a GET event stream whose first
// `endpoint` event names where to POST, messages as `message` events. A dropped stream is opened
// again (with Last-Event-ID); the server then names a new endpoint: a new, blank session, which
// onendpoint reports. A stream that cannot be opened again (refused, or out of retries) closes the
// client: onclose reports it. Messages are forwarded, not re-validated by schema.

import { ProxyError } from "../errors.ts";
import { jsonBody, type JSONRPCMessage } from "../jsonrpc.ts";
import type { FetchLike } from "../sdk.ts";
import { fetchWithinOrigin, mediaType, refusal, refusalText, sameOrigin } from "./http_request.ts";
import { SseOpenError } from "./remote_probe.ts";
import { messageOf, readEvents, type SseEvent, SseParser } from "./sse_parser.ts";
import type { Reconnection } from "./streamable_client.ts";

export class LegacySseClient {
  onmessage?: (message: JSONRPCMessage) => void;
  onerror?: (error: Error) => void;
  onclose?: () => void;
  /** The server named a new endpoint after the first (it dropped the stream): a new session. */
  onendpoint?: () => void;
  #url: URL;
  #fetch: FetchLike;
  #reconnection: Reconnection;
  #abort = new AbortController();
  #endpoint?: URL;
  #protocolVersion?: string;
  #lastEventId?: string;
  #retryMs?: number;
  #timer?: ReturnType<typeof setTimeout>;
  /** Settled by the first `endpoint` event, or by a failure before it. */
  #starting?: PromiseWithResolvers<void>;
  #closed = false;

  constructor(url: URL, options: { fetch: FetchLike; reconnection: Reconnection }) {
    this.#url = url;
    this.#fetch = options.fetch;
    this.#reconnection = options.reconnection;
  }

  setProtocolVersion(version: string): void {
    this.#protocolVersion = version;
  }

  /** Opens the event stream; resolves at its `endpoint` event. */
  start(): Promise<void> {
    if (this.#starting) return Promise.reject(new Error("the SSE client was started already"));
    this.#starting = Promise.withResolvers<void>();
    this.#open(0).catch((error) => this.#failed(error, 0, false));
    return this.#starting.promise;
  }

  /** POSTs one message to the endpoint; rejects when the server refused it. */
  async send(message: JSONRPCMessage): Promise<void> {
    const endpoint = this.#endpoint;
    if (!endpoint) throw new ProxyError("upstream", "the server has not named its endpoint yet");
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.#protocolVersion) headers["mcp-protocol-version"] = this.#protocolVersion;
    const response = await fetchWithinOrigin(this.#fetch, endpoint, {
      method: "POST",
      headers,
      body: jsonBody(message),
      signal: this.#abort.signal,
    });
    if (!response.ok) {
      const text = await refusalText(response);
      throw new ProxyError("upstream", refusal("POST", response, text, endpoint));
    }
    await response.body?.cancel().catch(() => {});
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#abort.abort();
    clearTimeout(this.#timer);
    this.#starting?.reject(new ProxyError("upstream", "closed while connecting"));
    this.#starting?.promise.catch(() => {});
    this.onclose?.();
    return Promise.resolve();
  }

  /** GET the event stream and read it to its end; then open it again, unless refused. */
  async #open(attempt: number): Promise<void> {
    const headers: Record<string, string> = { accept: "text/event-stream" };
    if (this.#protocolVersion) headers["mcp-protocol-version"] = this.#protocolVersion;
    if (this.#lastEventId) headers["last-event-id"] = this.#lastEventId;
    let response: Response;
    try {
      response = await fetchWithinOrigin(this.#fetch, this.#url, {
        method: "GET",
        headers,
        signal: this.#abort.signal,
      });
    } catch (error) {
      return this.#failed(error, attempt, true);
    }
    if (!response.ok || mediaType(response.headers.get("content-type")) !== "text/event-stream") {
      const text = await refusalText(response);
      const why = refusal("GET", response, text, this.#url);
      // A server error (a proxy's 502 while the server restarts) is tried again; any other wrong
      // answer ends the stream for good, as in EventSource.
      const retry = response.status >= 500;
      return this.#failed(new SseOpenError(why, { status: response.status }), attempt, retry);
    }
    const parser = new SseParser((event) => this.#event(event));
    parser.lastEventId = this.#lastEventId;
    const problem = await readEvents(response.body, parser);
    this.#lastEventId = parser.lastEventId;
    if (parser.retryMs !== undefined) this.#retryMs = parser.retryMs;
    if (this.#closed) return;
    if (!this.#endpoint) {
      const why = "the event stream ended before the server named its endpoint";
      return this.#failed(new SseOpenError(why, { cause: problem }), attempt, false);
    }
    const why = problem === undefined ? "the server ended the event stream" : "the stream broke";
    this.onerror?.(new ProxyError("upstream", `${why}; opening it again`, { cause: problem }));
    this.#reopen(0);
  }

  /**
   * Before the endpoint: start() fails. After: reported, and tried again when it may help;
   * otherwise the client closes (without its stream it would never hear an answer again).
   */
  #failed(error: unknown, attempt: number, retry: boolean): void {
    if (this.#closed) return;
    if (!this.#endpoint) {
      this.#starting?.reject(
        error instanceof ProxyError || error instanceof SseOpenError
          ? error
          : new SseOpenError("the event stream could not be opened", { cause: error }),
      );
      return;
    }
    this.onerror?.(error instanceof Error ? error : new Error(String(error)));
    if (retry) this.#reopen(attempt + 1);
    else void this.close();
  }

  #reopen(attempt: number): void {
    const { initialDelayMs, maxDelayMs, growFactor, maxRetries } = this.#reconnection;
    if (this.#closed) return;
    if (attempt >= maxRetries) {
      const why = `gave up reopening the event stream after ${maxRetries} attempt(s)`;
      return this.#failed(new ProxyError("upstream", why), attempt, false);
    }
    const delay = this.#retryMs ?? Math.min(initialDelayMs * growFactor ** attempt, maxDelayMs);
    this.#timer = setTimeout(
      () => this.#open(attempt).catch((error) => this.#failed(error, attempt, false)),
      delay,
    );
  }

  #event(event: SseEvent): void {
    if (event.event === "endpoint") return this.#named(event.data);
    const parsed = event.event === "message" ? messageOf(event) : undefined;
    if (!parsed) return;
    const { message, problem } = parsed;
    if (message) return this.onmessage?.(message);
    this.onerror?.(new ProxyError("upstream", `the server sent ${problem}`));
  }

  /** An `endpoint` event: where to POST, on the stream's own origin only. */
  #named(data: string): void {
    let endpoint: URL | undefined;
    try {
      endpoint = new URL(data, this.#url);
    } catch {
      endpoint = undefined;
    }
    if (!endpoint || !sameOrigin(this.#url, endpoint)) {
      const error = new SseOpenError(
        `the server named an endpoint on another origin (${endpoint?.origin ?? data}); ` +
          "messages go only to the server's own origin",
      );
      if (this.#endpoint) this.onerror?.(error);
      else this.#starting?.reject(error);
      void this.close();
      return;
    }
    const first = this.#endpoint === undefined;
    this.#endpoint = endpoint;
    if (first) this.#starting?.resolve();
    else this.onendpoint?.();
  }
}
