// A remote MCP server over Streamable HTTP or legacy SSE: the SDK's client transports, fed our
// fetch, behind the fallback strategy; a session the server forgot is re-initialized with the
// client's own initialize and the request retried; close() ends the session with DELETE.

import { formatError, ProxyError } from "../errors.ts";
import {
  isRequest,
  isResponse,
  type JSONRPCMessage,
  type JSONRPCRequest,
  type RequestId,
} from "../jsonrpc.ts";
import { log } from "../log.ts";
import {
  type FetchLike,
  SSEClientTransport,
  SseError,
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from "../sdk.ts";
import type { UpstreamTransport } from "./child.ts";

export type Strategy = "http-first" | "sse-first" | "http-only" | "sse-only";
export const STRATEGIES: readonly Strategy[] = ["http-first", "sse-first", "http-only", "sse-only"];

type Kind = "http" | "sse";
type Client = StreamableHTTPClientTransport | SSEClientTransport;

const ORDER: Record<Strategy, readonly Kind[]> = {
  "http-first": ["http", "sse"],
  "sse-first": ["sse", "http"],
  "http-only": ["http"],
  "sse-only": ["sse"],
};
const NAME: Record<Kind, string> = { http: "Streamable HTTP", sse: "SSE" };

/** The server-to-client stream keeps trying, with backoff (or the server's `retry`). */
const RECONNECTION = {
  initialReconnectionDelay: 1000,
  maxReconnectionDelay: 30_000,
  reconnectionDelayGrowFactor: 1.5,
  maxRetries: 100,
};

export interface RemoteOptions {
  url: URL;
  strategy: Strategy;
  /** Carries our headers (and, with OAuth, tokens); failures to reach the host are ProxyErrors. */
  fetch: FetchLike;
  /** How long the SSE GET may take to deliver its `endpoint` event. */
  connectTimeoutMs: number;
}

/** What the last HTTP answer looked like while a transport was being tried. */
interface Observed {
  status: number;
  statusText: string;
  contentType: string;
  jsonRpcError: boolean;
}

export class RemoteTransport implements UpstreamTransport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  closeReason?: string;
  #options: RemoteOptions;
  #client?: Client;
  #probing?: Client;
  #ready?: Promise<void>;
  #initialize?: JSONRPCRequest;
  #internal = new Map<RequestId, (message: JSONRPCMessage) => void>();
  #observed?: Observed;
  #handshakes = 0;
  #closed = false;

  constructor(options: RemoteOptions) {
    this.#options = options;
  }

  /** Which transport is in use once connected: "Streamable HTTP" or "SSE". */
  get transportName(): string | undefined {
    return this.#client instanceof SSEClientTransport
      ? NAME.sse
      : this.#client
      ? NAME.http
      : undefined;
  }

  /** Connects lazily: the first message picks the transport (it is normally initialize). */
  start(): Promise<void> {
    return Promise.resolve();
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.#closed) throw new ProxyError("upstream", "the connection to the server is closed");
    if (isRequest(message) && message.method === "initialize") this.#initialize = message;
    if (!this.#client && !this.#ready) {
      this.#ready = this.#connect(message);
      this.#ready.catch(() => (this.#ready = undefined));
      return await this.#ready;
    }
    await this.#ready;
    const client = this.#client!;
    try {
      await client.send(message);
    } catch (error) {
      // Sent on a session that was replaced meanwhile (its transport was discarded): resend.
      const replaced = this.#client !== client && !this.#closed;
      if (!replaced && !this.#sessionExpired(client, error)) throw this.#failure(error);
      if (!replaced) await this.#recover(client);
      await this.#ready;
      // The new session was initialized by the proxy itself; the client's own initialized is moot.
      if ("method" in message && message.method === "notifications/initialized") return;
      await this.#client!.send(message);
    }
  }

  /** Ends the session (DELETE, bounded by a short wait) and the connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const client = this.#client ?? this.#probing;
    if (client instanceof StreamableHTTPClientTransport && client.sessionId) {
      await withTimeout(client.terminateSession(), 2000, "DELETE took too long").catch((error) =>
        log.debug(`could not end the remote session: ${formatError(error)}`)
      );
    }
    await this.#discard(client);
    this.closeReason ??= "closed the connection";
    this.onclose?.();
  }

  /** Tries each transport of the strategy in turn with `first`, falling back where allowed. */
  async #connect(first: JSONRPCMessage): Promise<void> {
    const { url, strategy } = this.#options;
    const order = ORDER[strategy];
    const failures: string[] = [];
    for (const [index, kind] of order.entries()) {
      const client = this.#create(kind);
      this.#probing = client;
      this.#observed = undefined;
      try {
        await this.#open(kind, client);
        await client.send(first);
        this.#client = client;
        this.#probing = undefined;
        const via = failures.length > 0 ? `, after ${failures.join("; ")}` : "";
        log.info(`connected to ${url.href} over ${NAME[kind]}${via}`);
        return;
      } catch (error) {
        this.#probing = undefined;
        await this.#discard(client);
        const reason = this.#reason(kind, error);
        failures.push(`${NAME[kind]} failed: ${reason}`);
        const next = order[index + 1];
        if (next && this.#fallsBack(kind, error)) {
          log.info(`${NAME[kind]} failed (${reason}); trying ${NAME[next]}`);
          continue;
        }
        const only = order.length === 1
          ? ` (--transport ${strategy}: no other transport was tried)`
          : "";
        const failure = new ProxyError(
          "upstream",
          `cannot connect to ${url.href}: ${failures.join("; ")}${only}`,
          { cause: error },
        );
        log.error(failure.message);
        throw failure;
      }
    }
  }

  #create(kind: Kind): Client {
    const { url } = this.#options;
    const fetch = this.#fetch;
    const client = kind === "http"
      ? new StreamableHTTPClientTransport(url, { fetch, reconnectionOptions: RECONNECTION })
      : new SSEClientTransport(url, { fetch });
    client.onmessage = (message) => this.#fromRemote(client, message);
    client.onerror = (error) => {
      if (client === this.#client) log.debug(`${NAME[kind]}: ${formatError(error)}`);
    };
    return client;
  }

  async #open(kind: Kind, client: Client): Promise<void> {
    if (kind === "http") return await client.start();
    const seconds = this.#options.connectTimeoutMs / 1000;
    await withTimeout(
      client.start(),
      this.#options.connectTimeoutMs,
      `no "endpoint" event within ${seconds}s`,
    );
  }

  /** Closes a transport we no longer use, without letting its close reach the bridge. */
  async #discard(client: Client | undefined): Promise<void> {
    if (!client) return;
    client.onmessage = undefined;
    client.onerror = undefined;
    client.onclose = undefined;
    await client.close().catch(() => {});
  }

  #fromRemote(client: Client, message: JSONRPCMessage): void {
    if (client !== this.#client && client !== this.#probing) return;
    if (isResponse(message) && message.id !== undefined) {
      const internal = this.#internal.get(message.id);
      if (internal) {
        this.#internal.delete(message.id);
        return internal(message);
      }
      if (message.id === this.#initialize?.id && "result" in message) {
        const version = (message.result as { protocolVersion?: unknown }).protocolVersion;
        if (typeof version === "string") client.setProtocolVersion?.(version);
      }
    }
    this.onmessage?.(message);
  }

  /** A 404 on a request that carried a session id: the server forgot the session. */
  #sessionExpired(client: Client, error: unknown): boolean {
    return client instanceof StreamableHTTPClientTransport &&
      error instanceof StreamableHTTPError && error.code === 404 &&
      client.sessionId !== undefined && this.#initialize !== undefined;
  }

  /** Starts a new session with the client's initialize; concurrent failures share one recovery. */
  #recover(failed: Client): Promise<void> {
    if (this.#client !== failed) return this.#ready ?? Promise.resolve();
    log.info("the server no longer knows the session; starting a new one and retrying");
    this.#client = undefined;
    this.#ready = (async () => {
      await this.#discard(failed);
      const client = this.#create("http");
      this.#probing = client;
      try {
        await client.start();
        await this.#handshake(client);
        this.#client = client;
      } finally {
        this.#probing = undefined;
      }
    })();
    this.#ready.catch((error) => {
      this.#ready = undefined;
      log.error(`could not start a new session: ${formatError(error)}`);
    });
    return this.#ready;
  }

  /** initialize (the client's params, our own id) + initialized, on a fresh transport. */
  async #handshake(client: Client): Promise<void> {
    const id = `mcp-proxy-initialize-${++this.#handshakes}`;
    const answer = new Promise<JSONRPCMessage>((resolve) => this.#internal.set(id, resolve));
    await client.send({ ...this.#initialize!, id });
    const response = await withTimeout(answer, 30_000, "no answer to initialize within 30s")
      .finally(() => this.#internal.delete(id));
    if (!("result" in response)) {
      throw new ProxyError(
        "upstream",
        `the server refused initialize: ${JSON.stringify(response)}`,
      );
    }
    const version = (response.result as { protocolVersion?: unknown }).protocolVersion;
    if (typeof version === "string") client.setProtocolVersion?.(version);
    await client.send({ jsonrpc: "2.0", method: "notifications/initialized" });
  }

  /** Whether a failure of `kind` on the first message means "try the other transport". */
  #fallsBack(kind: Kind, error: unknown): boolean {
    if (kind === "http") {
      if (!(error instanceof StreamableHTTPError)) return false;
      return error.code === 404 || error.code === 405 ||
        (error.code === 400 && this.#observed?.jsonRpcError === false);
    }
    if (error instanceof ProxyError) return error.code === "timeout";
    if (!(error instanceof SseError)) return false;
    const status = this.#observed?.status ?? error.code ?? 0;
    const type = this.#observed?.contentType ?? "";
    return (status >= 400 && status < 500) || !/^text\/event-stream/i.test(type);
  }

  /** Why a transport failed, in a few words. */
  #reason(kind: Kind, error: unknown): string {
    if (error instanceof ProxyError) return error.message;
    const seen = this.#observed;
    if (
      seen &&
      (seen.status >= 400 || (kind === "sse" && !/^text\/event-stream/i.test(seen.contentType)))
    ) {
      const what = kind === "http" ? "POST" : "GET";
      const type = seen.status < 400 ? ` with content type "${seen.contentType || "none"}"` : "";
      return `the ${what} was answered ${seen.status} ${seen.statusText}${type}`.trim();
    }
    return formatError(error);
  }

  #failure(error: unknown): unknown {
    return error instanceof StreamableHTTPError || error instanceof SseError
      ? new ProxyError("upstream", `the server answered: ${formatError(error)}`, { cause: error })
      : error;
  }

  /** Our fetch, watching answers while a transport is being tried (for the fallback decision). */
  #fetch: FetchLike = async (url, init) => {
    const response = await this.#options.fetch(url, init);
    if (this.#probing) {
      const observed: Observed = {
        status: response.status,
        statusText: response.statusText,
        contentType: response.headers.get("content-type") ?? "",
        jsonRpcError: false,
      };
      if (response.status === 400) {
        try {
          const body = await response.clone().json();
          observed.jsonRpcError = typeof body?.error?.code === "number";
        } catch {
          observed.jsonRpcError = false;
        }
      }
      this.#observed = observed;
    }
    return response;
  };
}

/** Rejects with a ProxyError("timeout") when `promise` takes longer than `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ProxyError("timeout", message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
