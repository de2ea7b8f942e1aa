// A remote MCP server over Streamable HTTP or legacy SSE (our client transports, fed our fetch),
// behind the fallback strategy. A session the server forgot (404 on any request, the GET
// stream included) or replaced (a new SSE `endpoint`) is initialized again with the client's own
// initialize, its log level and subscriptions restored, and a request the server refused with 404
// sent again. A request whose POST was still in flight on the old session is never sent twice:
// the old transport is retired, not closed, until those POSTs have their answers. close() sends
// DELETE.

import { formatError, ProxyError } from "../errors.ts";
import {
  cancelledId,
  errorResponse,
  isNotification,
  isRequest,
  isResponse,
  type JSONRPCMessage,
  type JSONRPCNotification,
  type JSONRPCRequest,
  type RequestId,
  UPSTREAM_ERROR,
  withId,
} from "../jsonrpc.ts";
import { log } from "../log.ts";
import type { FetchLike } from "../sdk.ts";
import type { UpstreamExtra, UpstreamTransport } from "./child.ts";
import { LegacySseClient } from "./sse_client.ts";
import { StreamableHttpClient, StreamableHttpError } from "./streamable_client.ts";
import {
  fallsBack,
  type Kind,
  NAME,
  observe,
  type Observed,
  reason,
  shownUrl,
  withTimeout,
} from "./remote_probe.ts";

import type { Strategy } from "./strategy.ts";
export { STRATEGIES, type Strategy } from "./strategy.ts";

type Client = StreamableHttpClient | LegacySseClient;

/** How our Streamable HTTP client reopens a dropped event stream. */
const RECONNECTION = { initialDelayMs: 1000, maxDelayMs: 30_000, growFactor: 1.5, maxRetries: 100 };

const ORDER: Record<Strategy, readonly Kind[]> = {
  "http-first": ["http", "sse"],
  "sse-first": ["sse", "http"],
  "http-only": ["http"],
  "sse-only": ["sse"],
};

export interface RemoteOptions {
  url: URL;
  strategy: Strategy;
  /** Carries our headers (and, with OAuth, tokens); failures to reach the host are ProxyErrors. */
  fetch: FetchLike;
  /** How long connecting may take: the SSE `endpoint` event, the answer to the first POST. */
  connectTimeoutMs: number;
}

/** A server's request to the client: the transport and session that asked, with its own id. */
interface Asked {
  client: Client;
  session: number;
  id: RequestId;
  /** Its session is over, and the client was told so. */
  ended?: boolean;
}

export class RemoteTransport implements UpstreamTransport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage, extra?: UpstreamExtra) => void;
  closeReason?: string;
  #options: RemoteOptions;
  #kind?: Kind;
  #client?: Client;
  #probing?: Client;
  /** Requests the server refused with 404, waiting for the new session to be sent again on. */
  #resending = new Set<RequestId>();
  /** Replaced sessions' transports, kept until the requests they carry are answered. */
  #retired = new Set<StreamableHttpClient>();
  /** Connecting or renewing the session; sends wait for it. */
  #ready?: Promise<void>;
  #initialize?: JSONRPCRequest;
  /** What a new session must be told again: the log level and resource subscriptions. */
  #logLevel?: JSONRPCRequest["params"];
  #subscriptions = new Set<string>();
  /** Answers to our own requests (initialize, restores) are kept from the client. */
  #internal = new Map<RequestId, (message: JSONRPCMessage) => void>();
  /** The client's requests sent and not yet answered, by the transport that carried them. */
  #inflight = new Map<RequestId, Client>();
  /** Those of them whose POST the server accepted: a new session will never answer them. */
  #accepted = new Set<RequestId>();
  /**
   * The server's requests to the client, by the id the client knows them by: the transport (so
   * session) that asked, and the id it asked with.
   */
  #serverRequests = new Map<RequestId, Asked>();
  #aliases = 0;
  /** A legacy SSE transport's current session, counted (a new `endpoint` is a new session). */
  #sessionOf = new WeakMap<Client, number>();
  #observed?: Observed;
  /** True while #connect tries transports (answers are observed for the fallback decision). */
  #connecting = false;
  #internalIds = 0;
  #closed = false;
  /** Why there is no session (said when the next request starts one). */
  #noSession = "the last attempt to start a session failed";

  constructor(options: RemoteOptions) {
    this.#options = options;
  }

  /** Connects lazily: the first message picks the transport (it is normally initialize). */
  start(): Promise<void> {
    return Promise.resolve();
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.#closed) throw new ProxyError("upstream", "the connection to the server is closed");
    const cancelled = cancelledId(message);
    if (cancelled === undefined) {
      this.#remember(message);
      return await this.#send(message);
    }
    // The client no longer waits for that request: it is neither in flight nor to be re-sent.
    const carrier = this.#inflight.get(cancelled);
    const settle = () => {
      this.#forgetRequest(cancelled);
      this.#resending.delete(cancelled);
    };
    if (carrier instanceof StreamableHttpClient && this.#retired.has(carrier)) {
      // The request runs on a retired session: the cancellation goes there, not to the new one
      // (and the retired transport stays until it has gone).
      await carrier.send(message).catch((error) =>
        log.debug(`could not cancel on the ended session: ${formatError(error)}`)
      );
      carrier.forget(cancelled);
      return settle();
    }
    settle();
    try {
      await this.#send(message);
    } finally {
      // The cancellation has gone first; now the request's stream is let go (a disconnect alone
      // does not cancel, the spec says) rather than read and resumed for the rest of the session.
      if (carrier instanceof StreamableHttpClient) carrier.forget(cancelled);
    }
  }

  async #send(message: JSONRPCMessage): Promise<void> {
    if (isResponse(message) && message.id !== undefined) {
      const asked = this.#serverRequests.get(message.id);
      if (!asked) {
        // The server took its question back (or never asked one with that id): whatever
        // session uses that id now did not ask it.
        return log.debug(`dropped an answer to ${String(message.id)}, which no server awaits`);
      }
      this.#serverRequests.delete(message.id);
      const carrier = asked.client;
      if (asked.id !== message.id) message = withId(message, asked.id);
      if (carrier instanceof StreamableHttpClient && this.#retired.has(carrier)) {
        // Asked on a retired session for a request it still carries: answered there.
        return await carrier.send(message);
      }
      if (carrier !== this.#client || asked.session !== this.#session(carrier)) {
        // Asked on a session that has since been replaced: the new one never asked it.
        return log.debug(`dropped an answer to ${String(message.id)} from an ended session`);
      }
    }
    if (!this.#client && !this.#ready) {
      if (this.#kind === undefined || !this.#initialize) {
        this.#ready = this.#connect(message);
        this.#ready.catch(() => (this.#ready = undefined));
        return await this.#ready;
      }
      void this.#renew(undefined, this.#noSession);
    }
    await this.#ready;
    await this.#sendOn(message);
  }

  /** Ends the session (DELETE, bounded by a short wait) and the connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const client = this.#client ?? this.#probing;
    if (client instanceof StreamableHttpClient && client.sessionId) {
      await withTimeout(client.terminateSession(), 2000, "DELETE took too long").catch((error) =>
        log.debug(`could not end the remote session: ${formatError(error)}`)
      );
    }
    await this.#discard(client);
    for (const old of this.#retired) await this.#discard(old);
    this.#retired.clear();
    this.closeReason ??= "closed the connection";
    this.onclose?.();
  }

  /** Sends on the current session; on a 404 (session forgotten) renews it and sends again. */
  async #sendOn(message: JSONRPCMessage): Promise<void> {
    const client = this.#current();
    try {
      await this.#sendVia(client, message);
    } catch (error) {
      if (error === SETTLED) return;
      // A 404 (the server forgot the session) means the server did not take the message: it is
      // sent again on a new session. So is a notification whose session was replaced meanwhile.
      // Any other failure of a request is the client's to see: it may have run. An answer to
      // the old session's request is dropped: the new session never asked it.
      const replaced = this.#client !== client;
      const again = this.#expired(client, error) || (replaced && isNotification(message));
      if (!again || this.#closed) throw this.#failure(error);
      if (this.#client === client) {
        void this.#renew(client, "the server no longer knows the session");
      }
      if (isResponse(message)) return log.debug("dropped an answer to an ended session's request");
      const id = isRequest(message) ? message.id : undefined;
      if (id !== undefined) this.#resending.add(id);
      try {
        await this.#ready;
      } catch (failure) {
        if (id !== undefined) this.#resending.delete(id);
        throw failure;
      }
      // Cancelled (or timed out) while the new session was being made: not sent at all.
      if (id !== undefined && !this.#resending.delete(id)) return;
      // The new session was initialized by the proxy itself; the client's own initialized is moot.
      if ("method" in message && message.method === "notifications/initialized") return;
      await this.#sendVia(this.#current(), message).catch((failure) => {
        if (failure !== SETTLED) throw failure;
      });
    }
  }

  /**
   * One POST; a request is in flight on `client` from now until it is answered or fails. A
   * request answered or cancelled while its POST was out fails with SETTLED: nothing more to say.
   */
  async #sendVia(client: Client, message: JSONRPCMessage): Promise<void> {
    if (isRequest(message)) this.#inflight.set(message.id, client);
    try {
      await client.send(message);
    } catch (error) {
      if (!isRequest(message)) throw error;
      if (this.#inflight.get(message.id) !== client) throw SETTLED;
      this.#forgetRequest(message.id);
      throw error;
    }
    if (isRequest(message) && this.#inflight.get(message.id) === client) {
      this.#accepted.add(message.id);
    }
  }

  #current(): Client {
    if (this.#client) return this.#client;
    throw new ProxyError("upstream", "no session with the server; the next request tries again");
  }

  /** Tries each transport of the strategy in turn with `first`, falling back where allowed. */
  async #connect(first: JSONRPCMessage): Promise<void> {
    const order = ORDER[this.#options.strategy];
    const failures: string[] = [];
    this.#connecting = true;
    try {
      await this.#tryEach(first, order, failures);
    } finally {
      this.#connecting = false;
    }
  }

  async #tryEach(first: JSONRPCMessage, order: readonly Kind[], failures: string[]): Promise<void> {
    const { url, strategy, connectTimeoutMs } = this.#options;
    for (const [index, kind] of order.entries()) {
      const client = this.#create(kind);
      this.#probing = client;
      this.#observed = undefined;
      try {
        await this.#open(client);
        if (isRequest(first)) this.#inflight.set(first.id, client);
        const seconds = connectTimeoutMs / 1000;
        await withTimeout(client.send(first), connectTimeoutMs, `no answer within ${seconds}s`);
        if (this.#closed) throw new ProxyError("upstream", "closed while connecting");
        this.#client = client;
        this.#kind = kind;
        this.#probing = undefined;
        const via = failures.length > 0 ? `, after ${failures.join("; ")}` : "";
        log.info(`connected to ${shownUrl(url)} over ${NAME[kind]}${via}`);
        return;
      } catch (error) {
        this.#probing = undefined;
        if (isRequest(first)) this.#inflight.delete(first.id);
        await this.#discard(client);
        const why = reason(kind, error, this.#observed);
        failures.push(`${NAME[kind]} failed: ${why}`);
        const next = order[index + 1];
        if (next && !this.#closed && fallsBack(kind, error, this.#observed)) {
          log.info(`${NAME[kind]} failed (${why}); trying ${NAME[next]}`);
          continue;
        }
        const only = order.length === 1
          ? ` (--transport ${strategy}: no other transport was tried)`
          : "";
        const failure = new ProxyError(
          "upstream",
          `cannot connect to ${shownUrl(url)}: ${failures.join("; ")}${only}`,
          { cause: error },
        );
        log.error(failure.message);
        throw failure;
      }
    }
  }

  #create(kind: Kind): Client {
    const { url } = this.#options;
    const options = { fetch: this.#fetch, reconnection: RECONNECTION };
    const client = kind === "http"
      ? new StreamableHttpClient(url, options)
      : new LegacySseClient(url, options);
    // A later `endpoint` event: the server dropped the stream and made a new, blank session.
    if (client instanceof LegacySseClient) {
      client.onendpoint = () => void this.#sessionReplaced(client);
      // The event stream could not be opened again: the session is over.
      client.onclose = () => this.#connectionLost(client);
    }
    client.onmessage = (message: JSONRPCMessage, extra?: UpstreamExtra) =>
      this.#fromRemote(client, message, extra);
    client.onerror = (error) => {
      if (client !== this.#client) return;
      log.debug(`${NAME[kind]}: ${formatError(error)}`);
      // A 404 on the GET stream means the same as on a POST: the session is gone.
      if (this.#expired(client, error)) {
        void this.#renew(client, "the server no longer knows the session");
      }
    };
    return client;
  }

  /** Starts a transport; for SSE, waits for the `endpoint` event and watches for new ones. */
  async #open(client: Client): Promise<void> {
    if (client instanceof StreamableHttpClient) return await client.start();
    const ms = this.#options.connectTimeoutMs;
    await withTimeout(client.start(), ms, `no "endpoint" event within ${ms / 1000}s`);
  }

  /** A replaced session's transport: closed now, or (Streamable HTTP) once its POSTs are done. */
  #retire(client: Client | undefined): void {
    if (!(client instanceof StreamableHttpClient)) {
      if (client) this.#endQuestions(client);
      return void this.#discard(client);
    }
    client.onerror = undefined;
    // Retired before retire(): what it answers at once (requests whose answer was to come on the
    // GET stream) must reach #fromRemote as a retired session's.
    this.#retired.add(client);
    client.retire();
    this.#sweep();
  }

  /** Request `id` is answered or cancelled: its carrier, if retired and now idle, is closed. */
  #forgetRequest(id: RequestId): void {
    this.#inflight.delete(id);
    this.#accepted.delete(id);
    if (this.#retired.size > 0) this.#sweep();
  }

  #sweep(): void {
    const busy = new Set(this.#inflight.values());
    for (const client of this.#retired) {
      if (busy.has(client)) continue;
      this.#retired.delete(client);
      this.#endQuestions(client);
      void this.#discard(client);
    }
  }

  /** Closes a transport we no longer use, without letting its close reach the bridge. */
  async #discard(client: Client | undefined): Promise<void> {
    if (!client) return;
    client.onmessage = undefined;
    client.onerror = undefined;
    client.onclose = undefined;
    if (client instanceof LegacySseClient) client.onendpoint = undefined;
    await client.close().catch(() => {});
  }

  #fromRemote(client: Client, message: JSONRPCMessage, extra?: UpstreamExtra): void {
    if (client !== this.#client && client !== this.#probing) {
      // A retired session (its GET stream gone) speaks only on the streams of the requests it
      // still carries: their answers, progress and questions to the client pass; nothing else.
      if (!(client instanceof StreamableHttpClient) || !this.#retired.has(client)) return;
      if (isResponse(message)) {
        if (message.id === undefined || this.#inflight.get(message.id) !== client) return;
        this.#forgetRequest(message.id);
        return this.onmessage?.(message, extra);
      }
    } else if (isResponse(message) && message.id !== undefined) {
      const internal = this.#internal.get(message.id);
      if (internal) {
        this.#internal.delete(message.id);
        return internal(message);
      }
      this.#forgetRequest(message.id);
      if (message.id === this.#initialize?.id && "result" in message) {
        adoptVersion(client, message.result);
      }
      return this.onmessage?.(message, extra);
    }
    // The server's requests and notifications, from either session.
    const passed = this.#fromServer(client, message);
    if (passed) this.onmessage?.(passed, extra);
  }

  /**
   * A server's request or notification, with the id the client knows the request by. Each
   * session's server numbers its requests alone, so after a renewal a retired session's open
   * request and the new session's can share an id: the later one goes to the client under an id
   * of our own, and its answer gets the server's id back (#send). The server's cancellation of
   * its request names it by the client's id too; one of a request the client has answered (or
   * one the server never sent) is dropped: that id may be another session's now. Undefined: not
   * for the client.
   */
  #fromServer(client: Client, message: JSONRPCMessage): JSONRPCMessage | undefined {
    const cancelled = cancelledId(message);
    if (!isRequest(message) && cancelled === undefined) return message;
    const session = this.#session(client);
    const mine = (asked: Asked, id: RequestId) =>
      asked.client === client && asked.session === session && asked.id === id;
    if (isRequest(message)) {
      const open = this.#serverRequests.get(message.id);
      // (The same session using an id again for a request the client has not answered yet is the
      // server's own mistake: its last request takes the id.)
      if (open === undefined || mine(open, message.id)) {
        this.#serverRequests.set(message.id, { client, session, id: message.id });
        return message;
      }
      const aliasOf = () => `mcp-proxy-${++this.#aliases}-${message.id}`;
      let alias = aliasOf();
      while (this.#serverRequests.has(alias)) alias = aliasOf();
      log.debug(`a server request reuses id ${JSON.stringify(message.id)}: sent as "${alias}"`);
      this.#serverRequests.set(alias, { client, session, id: message.id });
      return withId(message, alias);
    }
    for (const [known, asked] of this.#serverRequests) {
      if (!mine(asked, cancelled!)) continue;
      // An answer the client sends anyway is dropped (#send): no other session gets it.
      this.#serverRequests.delete(known);
      if (known === cancelled) return message;
      const params = { ...(message as JSONRPCNotification).params, requestId: known };
      return { ...message, params } as JSONRPCMessage;
    }
    log.debug(`dropped the server's cancellation of ${String(cancelled)}: nothing awaits it`);
    return undefined;
  }

  /**
   * `client`'s session is over: the client is told to stop on the questions it still has from it
   * (a person may be looking at one). They stay known, so an answer sent anyway is dropped.
   */
  #endQuestions(client: Client): void {
    const session = this.#session(client);
    for (const [known, asked] of this.#serverRequests) {
      if (asked.client !== client || asked.session !== session || asked.ended) continue;
      asked.ended = true;
      this.onmessage?.({
        jsonrpc: "2.0",
        method: "notifications/cancelled",
        params: { requestId: known, reason: "the server's session ended" },
      });
    }
  }

  /**
   * Which session of `client` this is: 0, but counted up each time a legacy SSE server replaces
   * its session on the same connection. A request the client still answers keeps its session's
   * number, so its answer never goes to the next session.
   */
  #session(client: Client): number {
    return this.#sessionOf.get(client) ?? 0;
  }

  /** What a new session needs repeated: initialize, the log level, subscriptions. */
  #remember(message: JSONRPCMessage): void {
    if (!isRequest(message)) return;
    const uri = (message.params as { uri?: unknown } | undefined)?.uri;
    if (message.method === "initialize") this.#initialize = message;
    else if (message.method === "logging/setLevel") this.#logLevel = message.params;
    else if (message.method === "resources/subscribe" && typeof uri === "string") {
      this.#subscriptions.add(uri);
    } else if (message.method === "resources/unsubscribe" && typeof uri === "string") {
      this.#subscriptions.delete(uri);
    }
  }

  /** A 404 on a request that carried a session id: the server forgot the session. */
  #expired(client: Client, error: unknown): boolean {
    return client instanceof StreamableHttpClient &&
      error instanceof StreamableHttpError && error.status === 404 &&
      client.sessionId !== undefined && this.#initialize !== undefined;
  }

  /**
   * Starts a new session on a fresh transport of the same kind; concurrent failures share one
   * renewal. `failed` undefined: there is no session (a renewal failed before); try again.
   */
  #renew(failed: Client | undefined, why: string): Promise<void> {
    if (this.#closed) return Promise.resolve();
    const busy = failed ? this.#client !== failed : this.#ready !== undefined;
    if (busy || !this.#initialize || !this.#kind) return this.#ready ?? Promise.resolve();
    log.info(`${why}; starting a new one`);
    const kind = this.#kind;
    this.#client = undefined;
    // What the old session had accepted dies with it: answered now, not at --timeout. Requests
    // whose POST is still out get their own answer: a 404 sends them again on the new session.
    const lost = "the server lost the session while this request was in flight; retry it";
    if (failed) this.#failInflight(failed, lost, true);
    this.#retire(failed);
    return this.#ready = this.#settle((async () => {
      const client = this.#create(kind);
      this.#probing = client;
      try {
        await this.#open(client);
        await this.#handshake(client);
        this.#client = client;
      } finally {
        this.#probing = undefined;
      }
    })());
  }

  /**
   * The legacy SSE connection dropped and came back with a new endpoint: a new,
   * uninitialized session. Requests in flight on the old one are lost: they are answered with an
   * error now rather than at --timeout. Sends wait while the new session is initialized.
   */
  #sessionReplaced(client: LegacySseClient): Promise<void> {
    if (client !== this.#client || this.#closed) return Promise.resolve();
    log.info("the server dropped the SSE connection; initializing the new session");
    // The same transport carries a new session: the old one's questions are answered nowhere.
    this.#endQuestions(client);
    this.#sessionOf.set(client, this.#session(client) + 1);
    this.#failInflight(
      client,
      "the server dropped the connection while this request was in flight",
    );
    this.#client = undefined;
    this.#probing = client;
    return this.#ready = this.#settle((async () => {
      try {
        await this.#handshake(client);
        this.#client = client;
      } finally {
        this.#probing = undefined;
      }
    })());
  }

  /**
   * The legacy SSE stream is gone for good (refused, or out of retries): requests in flight are
   * answered with an error now, and the next request starts a new session.
   */
  #connectionLost(client: LegacySseClient): void {
    if (client !== this.#client || this.#closed) return;
    log.warn("the SSE connection to the server is lost; the next request opens a new session");
    this.#failInflight(
      client,
      "the connection to the server was lost while this request was in flight",
    );
    this.#client = undefined;
    this.#ready = undefined;
    this.#noSession = "the SSE connection was lost";
    this.#endQuestions(client);
    void this.#discard(client);
  }

  /** The client's requests in flight on `client` (all, or those the server accepted): failed now. */
  #failInflight(client: Client, lost: string, acceptedOnly = false): void {
    for (const [id, carrier] of this.#inflight) {
      if (carrier !== client || this.#internal.has(id)) continue;
      if (acceptedOnly && !this.#accepted.has(id)) continue;
      this.#forgetRequest(id);
      if (client instanceof StreamableHttpClient) client.forget(id);
      this.onmessage?.(errorResponse(id, UPSTREAM_ERROR, lost));
    }
  }

  /** A renewal's outcome: on failure the next send tries again; the failure is logged once. */
  #settle(renewal: Promise<void>): Promise<void> {
    renewal.catch((error) => {
      this.#ready = undefined;
      this.#noSession = "the last attempt to start a session failed";
      log.error(`could not start a new session: ${formatError(error)}`);
    });
    return renewal;
  }

  /**
   * initialize (the client's params, our own id) + initialized on a fresh session, then the log
   * level and subscriptions the client had set on the old one.
   */
  async #handshake(client: Client): Promise<void> {
    const response = await this.#ask(client, "initialize", this.#initialize!.params);
    if (!("result" in response)) {
      throw new ProxyError(
        "upstream",
        `the server refused initialize: ${JSON.stringify(response)}`,
      );
    }
    adoptVersion(client, response.result);
    await client.send({ jsonrpc: "2.0", method: "notifications/initialized" });
    if (this.#logLevel) await this.#ask(client, "logging/setLevel", this.#logLevel);
    for (const uri of this.#subscriptions) {
      await this.#ask(client, "resources/subscribe", { uri });
    }
  }

  /** Sends a request of our own and waits (30 s at most) for its answer. */
  async #ask(
    client: Client,
    method: string,
    params: JSONRPCRequest["params"],
  ): Promise<JSONRPCMessage> {
    const id = `mcp-proxy-${++this.#internalIds}`;
    const answer = new Promise<JSONRPCMessage>((resolve) => this.#internal.set(id, resolve));
    try {
      await client.send({ jsonrpc: "2.0", id, method, params });
      return await withTimeout(answer, 30_000, `no answer to ${method} within 30s`);
    } finally {
      this.#internal.delete(id);
    }
  }

  #failure(error: unknown): unknown {
    if (!(error instanceof StreamableHttpError)) return error;
    return new ProxyError("upstream", error.message, { cause: error });
  }

  /** Our fetch, watching answers while a transport is being tried (for the fallback decision). */
  #fetch: FetchLike = async (url, init) => {
    const response = await this.#options.fetch(url, init);
    if (this.#probing && this.#connecting) this.#observed = await observe(response);
    return response;
  };
}

/** The protocol version an initialize result names, sent by `client` from now on. */
function adoptVersion(client: Client, result: unknown): void {
  const version = (result as { protocolVersion?: unknown } | null)?.protocolVersion;
  if (typeof version === "string") client.setProtocolVersion?.(version);
}

/** Thrown by #sendVia for a request answered or cancelled while its POST was out. */
const SETTLED = Symbol("settled");
