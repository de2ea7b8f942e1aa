// One upstream shared by many short-lived clients (stateless serve): JSON-RPC ids and progress
// tokens are rewritten so concurrent clients never see each other's messages, and the upstream is
// initialized once, again after a restart, with the first client's initialize. Messages the
// upstream sends on its own (logs, sampling, list changes) cannot be traced to a client over stdio,
// so they are never guessed at: notifications are dropped and requests refused.

import { formatError } from "../errors.ts";
import {
  errorResponse,
  INTERNAL_ERROR,
  isRequest,
  isResponse,
  type JSONRPCMessage,
  type JSONRPCRequest,
  METHOD_NOT_FOUND,
  progressTokenOf,
  type RequestId,
  UPSTREAM_ERROR,
  withId,
} from "../jsonrpc.ts";
import { log } from "../log.ts";
import { SUPPORTED_PROTOCOL_VERSIONS } from "../protocol.ts";
import type { UpstreamTransport } from "./child.ts";

/** Whoever waits for an upstream response: a client, or the shared initialize itself. */
interface Receiver {
  deliver(message: JSONRPCMessage): void;
}

interface Outstanding {
  client: Receiver;
  id: RequestId;
  token?: string | number;
}

export interface SharedState {
  running: boolean;
  startFailed: boolean;
  lastError?: string;
  /** With --restart: how often it was started again after exiting, and whether it is due to. */
  restarts?: number;
  restarting?: boolean;
}

export interface SharedOptions {
  /** Start the server again when it exits (with backoff), not only at the next request. */
  restart?: boolean;
}

const RESTART_FIRST_MS = 1_000;
const RESTART_MAX_MS = 30_000;

/** Owns the real upstream; `connect()` hands out a virtual transport per client. */
export class SharedUpstream {
  #factory: () => UpstreamTransport;
  #upstream?: UpstreamTransport;
  #starting?: Promise<UpstreamTransport>;
  #initialized?: Promise<JSONRPCMessage>;
  #initParams?: JSONRPCRequest["params"];
  #nextId = 0;
  #requests = new Map<RequestId, Outstanding>();
  #tokens = new Map<string | number, Outstanding>();
  #clients = new Set<SharedClient>();
  #closed = false;
  #lastError?: string;
  #startFailed = false;
  #options: SharedOptions;
  #restarts = 0;
  #attempt = 0;
  #restartTimer?: ReturnType<typeof setTimeout>;
  #startedAt = 0;

  constructor(factory: () => UpstreamTransport, options: SharedOptions = {}) {
    this.#factory = factory;
    this.#options = options;
  }

  /** Starts the upstream ahead of the first client (a warm child). */
  async warm(): Promise<void> {
    try {
      await this.#ensureStarted();
    } catch (error) {
      if (this.#options.restart) {
        this.#scheduleRestart(`the shared MCP server did not start: ${formatError(error)}`);
      }
      throw error;
    }
  }

  /** A transport for one client; its requests reach the shared upstream with fresh ids. */
  connect(): UpstreamTransport {
    return new SharedClient(this);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#restartTimer);
    await this.#upstream?.close();
  }

  /**
   * For /health: whether the upstream runs, whether its last start failed, and why it last failed
   * or stopped. A crash alone is not a failure: the next request starts it again.
   */
  get state(): SharedState {
    const state: SharedState = {
      running: this.#upstream !== undefined,
      startFailed: this.#startFailed,
    };
    if (this.#lastError !== undefined) state.lastError = this.#lastError;
    if (this.#options.restart) {
      state.restarts = this.#restarts;
      state.restarting = this.#restartTimer !== undefined;
    }
    return state;
  }

  /** @internal */ attach(client: SharedClient): void {
    this.#clients.add(client);
  }

  /** @internal */ detach(client: SharedClient): void {
    this.#clients.delete(client);
    for (const [proxyId, entry] of this.#requests) {
      if (entry.client !== client) continue;
      this.#forget(proxyId, entry);
      this.#upstream?.send({
        jsonrpc: "2.0",
        method: "notifications/cancelled",
        params: { requestId: proxyId, reason: "client disconnected" },
      }).catch(() => {});
    }
  }

  /** @internal */ async send(client: SharedClient, message: JSONRPCMessage): Promise<void> {
    if (isRequest(message) && message.method === "initialize") {
      // The first client to initialize the server (again) gives its params; later ones get the
      // answer it got. A refused initialize is not kept: the next client's params are tried.
      if (this.#initialized === undefined) this.#initParams = message.params;
      const answer = await this.#initialize();
      client.deliver(answerFor(message, answer));
      return;
    }
    if (!isRequest(message) && "method" in message) {
      if (message.method === "notifications/initialized") return;
      if (message.method === "notifications/cancelled") {
        // Each POST is a new client here, so the request may belong to an earlier one.
        const params = message.params as { requestId?: RequestId } | undefined;
        const proxyId = this.#proxyIdFor(client, params?.requestId);
        if (proxyId === undefined) {
          return log.debug(`stateless: cannot tell which request to cancel; dropped`);
        }
        message = { ...message, params: { ...params, requestId: proxyId } };
        const entry = this.#requests.get(proxyId)!;
        if (entry.client !== client) {
          // The request's own POST waits on another client: end it with an error answer, which
          // the canceller ignores (as the spec says it should), rather than keep it open forever.
          this.#forget(proxyId, entry);
          entry.client.deliver(
            errorResponse(entry.id, INTERNAL_ERROR, "the request was cancelled by the client"),
          );
        }
      }
    }
    const upstream = await this.#ensureStarted();
    if (isRequest(message)) {
      if (this.#initParams) {
        const init = await this.#initialize();
        if ("error" in init) {
          // Not sent to a server that refused to initialize: the client hears why.
          const why = `the MCP server refused initialize: ${init.error.message}`;
          return client.deliver(errorResponse(message.id, INTERNAL_ERROR, why));
        }
      }
      const proxyId = ++this.#nextId;
      const token = progressTokenOf(message);
      const entry: Outstanding = { client, id: message.id, token };
      this.#requests.set(proxyId, entry);
      let params = message.params;
      if (token !== undefined) {
        const proxyToken = `p${proxyId}`;
        this.#tokens.set(proxyToken, entry);
        params = { ...params, _meta: { ...params?._meta, progressToken: proxyToken } };
      }
      message = params === message.params
        ? withId(message, proxyId)
        : { ...message, id: proxyId, params };
    } else if (isResponse(message)) {
      // No server-to-client request is ever delivered in stateless mode, so none is answered.
      return log.debug("stateless: dropped a response to a request nobody was sent");
    }
    await upstream.send(message);
  }

  /** The proxy id of `client`'s request `id`; else of the only outstanding request with `id`. */
  #proxyIdFor(client: SharedClient, id: RequestId | undefined): RequestId | undefined {
    let only: RequestId | undefined;
    let matches = 0;
    for (const [proxyId, entry] of this.#requests) {
      if (entry.id !== id || !(entry.client instanceof SharedClient)) continue;
      if (entry.client === client) return proxyId;
      only = proxyId;
      matches++;
    }
    return matches === 1 ? only : undefined;
  }

  #forget(proxyId: RequestId, entry: Outstanding): void {
    this.#requests.delete(proxyId);
    if (entry.token !== undefined) this.#tokens.delete(`p${String(proxyId)}`);
  }

  #ensureStarted(): Promise<UpstreamTransport> {
    if (this.#closed) return Promise.reject(new Error("the server is shutting down"));
    if (this.#starting) return this.#starting;
    const upstream = this.#factory();
    upstream.onmessage = (message) => this.#fromUpstream(message);
    upstream.onerror = (error) => log.debug(`shared upstream: ${formatError(error)}`);
    upstream.onclose = () => this.#upstreamClosed(upstream);
    this.#starting = upstream.start().then(() => {
      this.#upstream = upstream;
      this.#lastError = undefined;
      this.#startFailed = false;
      this.#startedAt = performance.now();
      return upstream;
    });
    this.#starting.catch((error) => {
      this.#starting = undefined;
      this.#lastError = formatError(error);
      this.#startFailed = true;
    });
    return this.#starting;
  }

  /** --restart: starts (and initializes) the server again after a backoff. */
  #scheduleRestart(why: string): void {
    if (this.#closed || this.#restartTimer !== undefined) return;
    // One that ran a while before exiting starts over at the shortest wait.
    if (performance.now() - this.#startedAt > RESTART_MAX_MS) this.#attempt = 0;
    const delay = Math.min(RESTART_FIRST_MS * 2 ** this.#attempt++, RESTART_MAX_MS);
    log.warn(`${why}; restarting it in ${delay / 1000}s`);
    this.#restartTimer = setTimeout(async () => {
      this.#restartTimer = undefined;
      if (this.#closed) return;
      this.#restarts++;
      try {
        await this.#ensureStarted();
        if (this.#initParams) await this.#initialize();
        log.info("the shared MCP server is running again");
      } catch (error) {
        this.#scheduleRestart(`the shared MCP server did not start: ${formatError(error)}`);
      }
    }, delay);
  }

  /** Sends initialize (once per upstream) and resolves with its response. */
  #initialize(): Promise<JSONRPCMessage> {
    this.#initialized ??= this.#runInitialize();
    return this.#initialized;
  }

  async #runInitialize(): Promise<JSONRPCMessage> {
    try {
      const upstream = await this.#ensureStarted();
      const proxyId = ++this.#nextId;
      const answer = new Promise<JSONRPCMessage>((resolve) => {
        this.#requests.set(proxyId, { client: { deliver: resolve }, id: proxyId });
      });
      const params = this.#initParams;
      await upstream.send({ jsonrpc: "2.0", id: proxyId, method: "initialize", params });
      const response = await answer;
      if ("result" in response) {
        await upstream.send({ jsonrpc: "2.0", method: "notifications/initialized" });
      } else {
        this.#initialized = undefined;
        if (this.#initParams === params) this.#initParams = undefined;
      }
      return response;
    } catch (error) {
      this.#initialized = undefined;
      throw error;
    }
  }

  #fromUpstream(message: JSONRPCMessage): void {
    if (isResponse(message)) {
      const entry = message.id === undefined ? undefined : this.#requests.get(message.id);
      if (!entry) return log.debug(`dropped a response to unknown id ${String(message.id)}`);
      this.#forget(message.id!, entry);
      entry.client.deliver(withId(message, entry.id));
      return;
    }
    if (message.method === "notifications/progress") {
      const params = message.params as { progressToken?: string | number } | undefined;
      const entry = params?.progressToken === undefined
        ? undefined
        : this.#tokens.get(params.progressToken);
      entry?.client.deliver({ ...message, params: { ...params, progressToken: entry.token! } });
      return;
    }
    if (isRequest(message)) {
      const why = `"${message.method}" needs a session: stateless mode cannot tell which client ` +
        "it is for; run serve without --stateless";
      this.#upstream?.send(errorResponse(message.id, METHOD_NOT_FOUND, why)).catch(() => {});
      log.debug(`stateless: refused "${message.method}" from the server`);
    } else {
      log.debug(`stateless: dropped "${message.method}" (no session to deliver it to)`);
    }
  }

  #upstreamClosed(upstream: UpstreamTransport): void {
    if (this.#upstream !== upstream && this.#starting === undefined) return;
    this.#upstream = undefined;
    if (!this.#closed) this.#lastError = `MCP server ${upstream.closeReason ?? "stopped"}`;
    this.#starting = undefined;
    this.#initialized = undefined;
    const reason = `MCP server ${upstream.closeReason ?? "closed the connection"}`;
    for (const entry of this.#requests.values()) {
      if (!(entry.client instanceof SharedClient)) {
        entry.client.deliver(errorResponse(entry.id, UPSTREAM_ERROR, reason));
      }
    }
    this.#requests.clear();
    this.#tokens.clear();
    for (const client of [...this.#clients]) client.upstreamClosed(upstream.closeReason);
    if (this.#options.restart && !this.#closed) this.#scheduleRestart(`shared ${reason}`);
  }
}

/** The virtual transport one client's bridge talks to. */
class SharedClient implements UpstreamTransport, Receiver {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  closeReason?: string;
  #shared: SharedUpstream;
  #closed = false;

  constructor(shared: SharedUpstream) {
    this.#shared = shared;
  }

  start(): Promise<void> {
    this.#shared.attach(this);
    return Promise.resolve();
  }

  send(message: JSONRPCMessage): Promise<void> {
    if (this.#closed) return Promise.reject(new Error(`MCP server ${this.closeReason}`));
    return this.#shared.send(this, message);
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.closeReason ??= "closed the connection";
    this.#shared.detach(this);
    this.onclose?.();
    return Promise.resolve();
  }

  deliver(message: JSONRPCMessage): void {
    if (!this.#closed) this.onmessage?.(message);
  }

  upstreamClosed(reason: string | undefined): void {
    this.closeReason = reason ?? "closed the connection";
    void this.close();
  }
}

/**
 * The shared initialize answer for one client: its own id and, when it asked for an older
 * protocol version the proxy also speaks, that version (servers that speak a newer version
 * speak the older ones too), so older clients still negotiate.
 */
function answerFor(request: JSONRPCRequest, answer: JSONRPCMessage): JSONRPCMessage {
  const response = { ...answer, id: request.id } as JSONRPCMessage & {
    result?: { protocolVersion?: string };
  };
  const asked = (request.params as { protocolVersion?: unknown } | undefined)?.protocolVersion;
  const agreed = response.result?.protocolVersion;
  if (
    typeof asked === "string" && typeof agreed === "string" && asked < agreed &&
    SUPPORTED_PROTOCOL_VERSIONS.includes(asked)
  ) {
    return { ...response, result: { ...response.result, protocolVersion: asked } };
  }
  return response;
}
