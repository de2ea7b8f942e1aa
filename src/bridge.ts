// Pipes JSON-RPC between a downstream (who calls us) and an upstream (whom we call), both ways and
// untouched but for the tool filter; remembers what is in flight so nothing is lost silently
// (upstream gone, timed out, session closed), and closes both together.

import type { Transport, TransportSendOptions } from "./sdk.ts";
import { Deadlines } from "./deadlines.ts";
import { formatError, ProxyError } from "./errors.ts";
import type { NameFilter } from "./filter.ts";
import {
  cancelledId,
  dropText,
  errorResponse,
  INVALID_PARAMS,
  INVALID_REQUEST,
  isRequest,
  isResponse,
  type JSONRPCMessage,
  progressTokenOf,
  type RequestId,
  reusedIdReason,
  UPSTREAM_ERROR,
} from "./jsonrpc.ts";
import { log, redact } from "./log.ts";
import type { UpstreamTransport } from "./upstream/child.ts";

export interface BridgeOptions {
  /** Called whenever the client is active: a message from it, or an answer to one of its requests. */
  onActivity?: () => void;
  /** Called once, after both sides are closed. */
  onClose?: () => void;
  /**
   * Hidden tools, prompts and resources vanish from their lists, and calls, gets and reads of
   * them are refused here.
   */
  filter?: ItemFilters;
  /**
   * A request not answered within this many milliseconds (progress restarts the clock) gets an
   * error and is cancelled upstream. 0 or unset: wait as long as the upstream lives.
   */
  requestTimeoutMs?: number;
  /** What set requestTimeoutMs, named in its error (default "--timeout"). */
  timeoutSource?: string;
  /** While this says true (a person authorizing in a browser), timeouts wait. */
  holdClock?: () => boolean;
}

export interface ItemFilters {
  tools?: NameFilter;
  prompts?: NameFilter;
  resources?: NameFilter;
}

type Kind = keyof ItemFilters;

/** The list methods, what they list, and the key of the list in their result. */
const LISTS: Record<string, [Kind, string]> = {
  "tools/list": ["tools", "tools"],
  "prompts/list": ["prompts", "prompts"],
  "resources/list": ["resources", "resources"],
  "resources/templates/list": ["resources", "resourceTemplates"],
};

interface Pending {
  method: string;
  progressToken?: string | number;
  /** The client dropped the connection it awaited this on. */
  abandoned?: boolean;
  /** Server-to-client requests made for this one and not yet answered (its clock is paused). */
  asking?: number;
}

/** A downstream that holds something per request (an HTTP stream) and can let it go. */
export interface ForgettingTransport extends Transport {
  /** The client cancelled request `id`: no answer will come, so stop waiting for one. */
  forget?(id: RequestId): void;
}

/**
 * Connects `downstream` and `upstream`. Requests from downstream are remembered until answered;
 * when the upstream closes, each gets a JSON-RPC error naming why, then the downstream is closed.
 * Messages the upstream sends on its own are sent downstream as related to the request they
 * belong to (progress by token; others by the response stream they came on, when the upstream
 * says, else the newest request in flight), so a Streamable HTTP downstream can deliver them on
 * that request's stream.
 */
export class Bridge {
  readonly downstream: ForgettingTransport;
  readonly upstream: UpstreamTransport;
  #options: BridgeOptions;
  #pending = new Map<RequestId, Pending>();
  #progress = new Map<string | number, RequestId>();
  /** URIs of resources the filter hid from resources/list (reads of them are refused). */
  #hiddenUris = new Set<string>();
  /** A filter is set: what the client sends is sent on as parsed, never as the text it came in. */
  #judging: boolean;
  /** Server-to-client requests in flight -> the client request they were made for. */
  #asks = new Map<RequestId, RequestId>();
  /** The requests whose clock runs (with a timeout set): one timer for all of them. */
  #clocks?: Deadlines<RequestId>;
  #closed = false;
  /** Messages from the client still on their way upstream, and to the client. */
  #sending = 0;
  #delivering = 0;
  #idleWaiters: Array<() => void> = [];

  constructor(
    downstream: ForgettingTransport,
    upstream: UpstreamTransport,
    options: BridgeOptions = {},
  ) {
    this.downstream = downstream;
    this.upstream = upstream;
    this.#options = options;
    const { tools, prompts, resources } = options.filter ?? {};
    this.#judging = !!(tools?.active || prompts?.active || resources?.active);
    const ms = options.requestTimeoutMs;
    if (ms) this.#clocks = new Deadlines(ms, (id) => this.#timeUp(id));
  }

  /** Number of client requests waiting for an answer. */
  get inFlight(): number {
    return this.#pending.size;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** True while a request is in flight that its client still waits for. */
  get busy(): boolean {
    for (const pending of this.#pending.values()) if (!pending.abandoned) return true;
    return false;
  }

  /** Resolves once no request is in flight and nothing is on its way either way. */
  whenIdle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #isIdle(): boolean {
    return this.#pending.size === 0 && this.#sending === 0 && this.#delivering === 0;
  }

  /** Sends to the client, counted until written, so "idle" means every answer went out. */
  async #deliver(message: JSONRPCMessage, options: TransportSendOptions): Promise<void> {
    this.#delivering++;
    try {
      await this.downstream.send(message, options);
    } finally {
      this.#delivering--;
      this.#checkIdle();
    }
  }

  #checkIdle(): void {
    if (this.#idleWaiters.length === 0 || !this.#isIdle()) return;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  /** Marks requests whose client dropped the connection it awaited them on. */
  abandon(ids: readonly RequestId[]): void {
    for (const id of ids) {
      const pending = this.#pending.get(id);
      if (pending) pending.abandoned = true;
    }
  }

  /** Wires both sides and starts them, upstream first (a child must exist before it is written). */
  async start(): Promise<void> {
    // Closed before it started (a session opened during shutdown): nothing may be spawned.
    if (this.#closed) return;
    this.upstream.onmessage = (message, extra) =>
      this.#fromUpstream(message, extra?.relatedRequestId);
    this.upstream.onerror = (error) => log.debug(`upstream: ${formatError(error)}`);
    this.upstream.onclose = () => void this.#upstreamClosed();
    this.downstream.onmessage = (message) => void this.#fromDownstream(message);
    this.downstream.onerror = (error) => log.debug(`downstream: ${formatError(error)}`);
    this.downstream.onclose = () => void this.close("the client disconnected");
    await this.upstream.start();
    await this.downstream.start();
  }

  /**
   * Closes both sides; safe to call more than once. Requests still in flight are answered first
   * with a JSON-RPC error carrying `reason`, so no client waits for an answer that cannot come.
   */
  async close(reason = "the session was closed"): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#failPending(reason);
    this.#clocks?.clear();
    await Promise.allSettled([this.upstream.close(), this.downstream.close()]);
    this.#progress.clear();
    this.#asks.clear();
    this.#options.onClose?.();
  }

  async #fromDownstream(message: JSONRPCMessage): Promise<void> {
    this.#options.onActivity?.();
    // The server reads what the filter judged: a name given twice in the text cannot be the
    // allowed one here and the hidden one there.
    if (this.#judging) dropText(message);
    const cancelled = cancelledId(message);
    if (isRequest(message)) {
      const hidden = this.#hidden(message);
      if (hidden !== undefined) {
        const refusal = errorResponse(message.id, INVALID_PARAMS, hidden);
        await this.#deliver(refusal, { relatedRequestId: message.id }).catch(() => {});
        return;
      }
      if (this.#pending.has(message.id)) {
        // Forwarded, its answer would settle the first request and the first one's answer be
        // lost; the first keeps its id, the second gets the error.
        log.warn(`refused a request reusing id ${JSON.stringify(message.id)}, still in flight`);
        const refusal = errorResponse(message.id, INVALID_REQUEST, reusedIdReason(message.id));
        await this.#deliver(refusal, { relatedRequestId: message.id }).catch(() => {});
        return;
      }
      const pending: Pending = { method: message.method, progressToken: progressTokenOf(message) };
      this.#pending.set(message.id, pending);
      if (pending.progressToken !== undefined) {
        this.#progress.set(pending.progressToken, message.id);
      }
      this.#arm(message.id, pending);
    } else if (cancelled !== undefined) {
      // A cancelled request gets no response (the server SHOULD NOT send one): stop waiting.
      this.#forget(cancelled);
      this.downstream.forget?.(cancelled);
    } else if (isResponse(message) && message.id !== undefined) {
      // The client answered the server (sampling, elicitation).
      this.#settleAsk(message.id);
    }
    this.#sending++;
    try {
      await this.upstream.send(message);
    } catch (error) {
      log.debug(`could not forward ${describe(message)}: ${formatError(error)}`);
      // Our own errors already say what, where and why; others get their cause chain.
      if (isRequest(message)) {
        this.#answer(message.id, error instanceof ProxyError ? error.message : formatError(error));
      }
    } finally {
      this.#sending--;
      this.#checkIdle();
    }
  }

  /** `streamOf`: the request on whose response stream the upstream sent it, if it knows. */
  #fromUpstream(message: JSONRPCMessage, streamOf?: RequestId): void {
    let related: RequestId | undefined;
    if (isResponse(message)) {
      related = message.id;
      const pending = related === undefined ? undefined : this.#pending.get(related);
      if (!pending) {
        // Too late (timed out, cancelled) or never asked: the client has its answer already.
        return log.debug(`dropped a response to ${String(related)}, which nothing awaits`);
      }
      this.#forget(related!);
      this.#options.onActivity?.();
      if (pending.method in LISTS) message = this.#filterList(message, pending.method);
    } else if (message.method === "notifications/progress") {
      const token = (message.params as { progressToken?: string | number } | undefined)
        ?.progressToken;
      related = token === undefined ? undefined : this.#progress.get(token);
      if (related !== undefined) {
        this.#options.onActivity?.();
        this.#arm(related, this.#pending.get(related));
      }
    } else if (message.method === "notifications/cancelled" && this.#takesBack(message)) {
      // The server took back its question: it goes where the question went, if that call is
      // still open.
      const forId = this.#settleAsk(cancelledId(message)!);
      related = forId !== undefined && this.#pending.has(forId) ? forId : undefined;
    } else {
      related = streamOf !== undefined && this.#pending.has(streamOf)
        ? streamOf
        : this.#newestPending();
      const pending = related === undefined ? undefined : this.#pending.get(related);
      if (isRequest(message) && pending) {
        // The server asks the client something for this request; a person may take a while.
        this.#asks.set(message.id, related!);
        pending.asking = (pending.asking ?? 0) + 1;
        this.#clocks?.stop(related!);
      }
    }
    const options: TransportSendOptions = related === undefined
      ? {}
      : { relatedRequestId: related };
    this.#deliver(message, options).catch((error) => {
      log.debug(`could not deliver ${describe(message)} to the client: ${formatError(error)}`);
      if (isRequest(message)) {
        this.upstream.send(errorResponse(message.id, UPSTREAM_ERROR, "client is not connected"))
          .catch(() => {});
      }
    });
  }

  /** Why a call, get or read must be refused (the filter hides its target), if it must. */
  #hidden(message: JSONRPCMessage & { method: string; params?: unknown }): string | undefined {
    const params = message.params as { name?: unknown; uri?: unknown } | undefined;
    const { tools, prompts } = this.#options.filter ?? {};
    if (message.method === "tools/call" && tools?.active && typeof params?.name === "string") {
      return tools.allows(params.name) ? undefined : `Unknown tool: ${params.name}`;
    }
    if (message.method === "prompts/get" && prompts?.active && typeof params?.name === "string") {
      return prompts.allows(params.name) ? undefined : `Unknown prompt: ${params.name}`;
    }
    if (message.method === "resources/read" && typeof params?.uri === "string") {
      return this.#hiddenUris.has(params.uri) ? `Unknown resource: ${params.uri}` : undefined;
    }
    return undefined;
  }

  /** A list result without the items the filter hides. */
  #filterList(message: JSONRPCMessage, method: string): JSONRPCMessage {
    const [kind, key] = LISTS[method]!;
    const filter = this.#options.filter?.[kind];
    const result = (message as { result?: Record<string, unknown> }).result;
    const items = result?.[key];
    if (!filter?.active || !Array.isArray(items)) return message;
    const kept = items.filter((item: { name?: unknown; uri?: unknown }) => {
      const shown = typeof item.name === "string" && filter.allows(item.name);
      if (!shown && typeof item.uri === "string") this.#hiddenUris.add(item.uri);
      return shown;
    });
    return { ...message, result: { ...result, [key]: kept } } as JSONRPCMessage;
  }

  /** Whether `message` is the server taking back a question it asked for a request in flight. */
  #takesBack(message: JSONRPCMessage): boolean {
    const id = cancelledId(message);
    return id !== undefined && this.#asks.has(id);
  }

  /**
   * The server's question `askId` is settled (answered or taken back): the clock of the request
   * it was asked for runs again. Returns that request's id.
   */
  #settleAsk(askId: RequestId): RequestId | undefined {
    const forId = this.#asks.get(askId);
    this.#asks.delete(askId);
    const pending = forId === undefined ? undefined : this.#pending.get(forId);
    if (pending?.asking) {
      pending.asking--;
      this.#arm(forId!, pending);
    }
    return forId;
  }

  /** (Re)starts the request's clock, when a timeout is set (and nothing is asked for it). */
  #arm(id: RequestId, pending: Pending | undefined): void {
    if (!this.#clocks || !pending) return;
    if (pending.asking) this.#clocks.stop(id);
    else this.#clocks.start(id);
  }

  /** Request `id`'s time is up: given up on, unless the clock is held. */
  #timeUp(id: RequestId): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    if (this.#options.holdClock?.()) this.#arm(id, pending);
    else this.#giveUp(id, pending);
  }

  /** No answer in time: the client gets an error and the server a cancellation. */
  #giveUp(id: RequestId, pending: Pending): void {
    const ms = this.#options.requestTimeoutMs!;
    const seconds = Math.round(ms / 100) / 10;
    const source = this.#options.timeoutSource ?? "--timeout";
    log.warn(`no answer to "${pending.method}" within ${seconds}s (${source}); gave up on it`);
    this.#answer(id, `no answer from the MCP server within ${seconds}s (${source})`);
    // initialize must never be cancelled (the spec forbids it); anything else is.
    if (pending.method === "initialize") return;
    this.upstream.send({
      jsonrpc: "2.0",
      method: "notifications/cancelled",
      params: { requestId: id, reason: "timed out" },
    }).catch(() => {});
  }

  #forget(id: RequestId): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    this.#clocks?.stop(id);
    if (pending.progressToken !== undefined) this.#progress.delete(pending.progressToken);
    this.#checkIdle();
  }

  /** Answers a request with an error (its text redacted like a log line: it may quote a server). */
  #answer(id: RequestId, reason: string): void {
    // Answered or cancelled meanwhile: the client has had its one answer.
    if (!this.#pending.has(id)) return;
    this.#forget(id);
    this.#deliver(errorResponse(id, UPSTREAM_ERROR, redact(reason)), { relatedRequestId: id })
      .catch((error) => log.debug(`could not deliver an error response: ${formatError(error)}`));
  }

  async #upstreamClosed(): Promise<void> {
    await this.close(`MCP server ${this.upstream.closeReason ?? "closed the connection"}`);
  }

  async #failPending(reason: string): Promise<void> {
    const ids = [...this.#pending.keys()];
    for (const id of ids) this.#forget(id);
    reason = redact(reason);
    await Promise.all(
      ids.map((id) =>
        this.#deliver(errorResponse(id, UPSTREAM_ERROR, reason), { relatedRequestId: id })
          .catch(() => {})
      ),
    );
  }

  #newestPending(): RequestId | undefined {
    let newest: RequestId | undefined;
    for (const id of this.#pending.keys()) newest = id;
    return newest;
  }
}

function describe(message: JSONRPCMessage): string {
  if ("method" in message) return `"${message.method}"`;
  return `the response to id ${String((message as { id?: unknown }).id)}`;
}
