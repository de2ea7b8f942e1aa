// Pipes JSON-RPC between a downstream (who calls us) and an upstream (whom we call), both ways and
// untouched; remembers what is in flight so nothing is lost silently, and closes both together.

import type { Transport, TransportSendOptions } from "./sdk.ts";
import { formatError } from "./errors.ts";
import {
  errorResponse,
  isRequest,
  isResponse,
  type JSONRPCMessage,
  progressTokenOf,
  type RequestId,
  UPSTREAM_ERROR,
} from "./jsonrpc.ts";
import { log } from "./log.ts";
import type { UpstreamTransport } from "./upstream/child.ts";

export interface BridgeOptions {
  /** Called whenever the client is active: a message from it, or an answer to one of its requests. */
  onActivity?: () => void;
  /** Called once, after both sides are closed. */
  onClose?: () => void;
}

interface Pending {
  progressToken?: string | number;
  /** The client dropped the connection it awaited this on. */
  abandoned?: boolean;
}

/**
 * Connects `downstream` and `upstream`. Requests from downstream are remembered until answered;
 * when the upstream closes, each gets a JSON-RPC error naming why, then the downstream is closed.
 * Messages the upstream sends on its own are sent downstream as related to the request they most
 * likely belong to (progress by token, others to the newest request in flight), so a Streamable
 * HTTP downstream can deliver them on that request's stream.
 */
export class Bridge {
  readonly downstream: Transport;
  readonly upstream: UpstreamTransport;
  #options: BridgeOptions;
  #pending = new Map<RequestId, Pending>();
  #progress = new Map<string | number, RequestId>();
  #closed = false;

  constructor(downstream: Transport, upstream: UpstreamTransport, options: BridgeOptions = {}) {
    this.downstream = downstream;
    this.upstream = upstream;
    this.#options = options;
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

  /** Marks requests whose client dropped the connection it awaited them on. */
  abandon(ids: readonly RequestId[]): void {
    for (const id of ids) {
      const pending = this.#pending.get(id);
      if (pending) pending.abandoned = true;
    }
  }

  /** Wires both sides and starts them, upstream first (a child must exist before it is written). */
  async start(): Promise<void> {
    this.upstream.onmessage = (message) => this.#fromUpstream(message);
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
    await Promise.allSettled([this.upstream.close(), this.downstream.close()]);
    this.#progress.clear();
    this.#options.onClose?.();
  }

  async #fromDownstream(message: JSONRPCMessage): Promise<void> {
    this.#options.onActivity?.();
    if (isRequest(message)) {
      const progressToken = progressTokenOf(message);
      this.#pending.set(message.id, { progressToken });
      if (progressToken !== undefined) this.#progress.set(progressToken, message.id);
    } else if ("method" in message && message.method === "notifications/cancelled") {
      // A cancelled request gets no response (the server SHOULD NOT send one): stop waiting.
      const id = (message.params as { requestId?: RequestId } | undefined)?.requestId;
      if (id !== undefined) this.#forget(id);
    }
    try {
      await this.upstream.send(message);
    } catch (error) {
      log.debug(`could not forward ${describe(message)}: ${formatError(error)}`);
      if (isRequest(message)) this.#answer(message.id, formatError(error));
    }
  }

  #fromUpstream(message: JSONRPCMessage): void {
    let related: RequestId | undefined;
    if (isResponse(message)) {
      related = message.id;
      if (related !== undefined && this.#pending.has(related)) {
        this.#forget(related);
        this.#options.onActivity?.();
      }
    } else if (message.method === "notifications/progress") {
      const token = (message.params as { progressToken?: string | number } | undefined)
        ?.progressToken;
      related = token === undefined ? undefined : this.#progress.get(token);
      if (related !== undefined) this.#options.onActivity?.();
    } else {
      related = this.#newestPending();
    }
    const options: TransportSendOptions = related === undefined
      ? {}
      : { relatedRequestId: related };
    this.downstream.send(message, options).catch((error) => {
      log.debug(`could not deliver ${describe(message)} to the client: ${formatError(error)}`);
      if (isRequest(message)) {
        this.upstream.send(errorResponse(message.id, UPSTREAM_ERROR, "client is not connected"))
          .catch(() => {});
      }
    });
  }

  #forget(id: RequestId): void {
    const pending = this.#pending.get(id);
    this.#pending.delete(id);
    if (pending?.progressToken !== undefined) this.#progress.delete(pending.progressToken);
  }

  #answer(id: RequestId, reason: string): void {
    this.#forget(id);
    this.downstream.send(errorResponse(id, UPSTREAM_ERROR, reason), { relatedRequestId: id })
      .catch((error) => log.debug(`could not deliver an error response: ${formatError(error)}`));
  }

  async #upstreamClosed(): Promise<void> {
    await this.close(`MCP server ${this.upstream.closeReason ?? "closed the connection"}`);
  }

  async #failPending(reason: string): Promise<void> {
    const ids = [...this.#pending.keys()];
    this.#pending.clear();
    await Promise.all(
      ids.map((id) =>
        this.downstream.send(errorResponse(id, UPSTREAM_ERROR, reason), { relatedRequestId: id })
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
