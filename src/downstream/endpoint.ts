// One upstream exposed over HTTP under a route prefix: Streamable HTTP at <prefix>/mcp and legacy
// SSE at <prefix>/sse + <prefix>/message. Each session gets its own upstream, unless stateless.

import { Bridge, type BridgeOptions } from "../bridge.ts";
import { formatError } from "../errors.ts";
import { log, redact } from "../log.ts";
import { isRequest, type JSONRPCMessage, SESSION_NOT_FOUND, UPSTREAM_ERROR } from "../jsonrpc.ts";
import type { UpstreamTransport } from "../upstream/child.ts";
import { type SharedState, SharedUpstream } from "../upstream/shared.ts";
import { jsonRpcErrorResponse, readJsonBody } from "./body.ts";
import { BoundedEventStore, type EventStoreLimits } from "./event_store.ts";
import { KeyRing } from "./guards.ts";
import type { SessionRegistry } from "./sessions.ts";
import { SseServerTransport } from "./sse.ts";
import { StreamableServerTransport } from "./streamable.ts";

export interface EndpointOptions {
  /** "" for /mcp, "/name" for /name/mcp. */
  prefix: string;
  /** Creates a new, unstarted upstream (a child per session). */
  upstream: () => UpstreamTransport;
  stateless: boolean;
  /** Stateless: restart the shared server when it exits (--restart). */
  restart?: boolean;
  maxBody: number;
  eventLimits: EventStoreLimits;
  /** A lone request answered within this goes back as one JSON body (--stream-after; 0: never). */
  streamAfterMs?: number;
  registry: SessionRegistry;
  /** Tokens accepted on this endpoint's routes, besides the global --api-key. */
  authTokens?: readonly string[];
  /** Applied to every session's bridge: the tool filter and the per-request timeout. */
  bridge?: Pick<BridgeOptions, "filter" | "requestTimeoutMs" | "timeoutSource" | "holdClock">;
}

const SESSION_HEADER = "mcp-session-id";

export class McpEndpoint {
  readonly prefix: string;
  /** This endpoint's own tokens, if it has any. */
  readonly keys?: KeyRing;
  #options: EndpointOptions;
  #shared?: SharedUpstream;
  #streamable = new Map<
    string,
    {
      transport: StreamableServerTransport;
      events: BoundedEventStore;
      bridge: Bridge;
    }
  >();
  #sse = new Map<string, SseServerTransport>();

  constructor(options: EndpointOptions) {
    this.prefix = options.prefix;
    this.#options = options;
    if (options.authTokens?.length) this.keys = new KeyRing(options.authTokens);
    if (options.stateless) {
      this.#shared = new SharedUpstream(options.upstream, { restart: options.restart });
    }
  }

  /** Starts the shared upstream ahead of the first request (stateless mode only). */
  async warm(): Promise<void> {
    await this.#shared?.warm();
  }

  /**
   * Answers a request for `path`, or undefined if not ours. `completed` settles when the response
   * has been delivered (rejecting if the client went away first).
   */
  handle(req: Request, path: string, completed: Promise<void>): Promise<Response> | undefined {
    const prefix = this.prefix;
    if (path === `${prefix}/mcp`) return this.#mcp(req, completed);
    if (path === `${prefix}/sse`) return Promise.resolve(this.#sseOpen(req));
    if (path === `${prefix}/message` || path === `${prefix}/messages`) return this.#ssePost(req);
    return undefined;
  }

  /** Whether `path` is one of this endpoint's routes. */
  matches(path: string): boolean {
    const p = this.prefix;
    return path === `${p}/mcp` || path === `${p}/sse` || path === `${p}/message` ||
      path === `${p}/messages`;
  }

  async close(): Promise<void> {
    await this.#shared?.close();
  }

  /** For /health: stateless endpoints report their shared server; a failed start is not ok. */
  health(): { ok: boolean; shared?: SharedState } {
    if (!this.#shared) return { ok: true };
    const shared = this.#shared.state;
    return { ok: !shared.startFailed, shared };
  }

  async #mcp(req: Request, completed: Promise<void>): Promise<Response> {
    if (req.method !== "POST" && req.method !== "GET" && req.method !== "DELETE") {
      return methodNotAllowed(this.#shared ? "POST" : "GET, POST, DELETE");
    }
    if (this.#shared) return await this.#stateless(req, completed);
    const sessionId = req.headers.get(SESSION_HEADER);
    if (sessionId !== null) {
      const session = this.#streamable.get(sessionId);
      if (!session) return sessionNotFound(sessionId);
      const { transport, events } = session;
      this.#options.registry.touch(sessionId);
      const lastEventId = req.method === "GET" ? req.headers.get("last-event-id") : null;
      if (lastEventId !== null && !events.knows(lastEventId)) {
        return jsonRpcErrorResponse(
          400,
          -32000,
          `Bad Request: Last-Event-ID "${lastEventId}" names no stream of this session whose ` +
            "events are still held; retry the request instead of resuming",
        );
      }
      if (req.method !== "POST") return transport.handleRequest(req);
      const body = await readJsonBody(req, this.#options.maxBody);
      if (!body.ok) return body.response;
      return transport.handleRequest(req, { parsedBody: body.value });
    }
    if (req.method !== "POST") {
      return jsonRpcErrorResponse(400, -32000, "Bad Request: Mcp-Session-Id header is required");
    }
    const body = await readJsonBody(req, this.#options.maxBody);
    if (!body.ok) return body.response;
    if (!isInitialize(body.value)) {
      return jsonRpcErrorResponse(
        400,
        -32000,
        "Bad Request: no Mcp-Session-Id header; a session starts with an initialize request",
      );
    }
    return await this.#openSession(req, body.value);
  }

  async #openSession(req: Request, body: unknown): Promise<Response> {
    const release = this.#options.registry.reserve();
    if (!release) return tooManySessions(this.#options.registry.maxSessions);
    let started: { response: Response | Promise<Response> };
    try {
      started = await this.#startSession(req, body);
    } finally {
      // The session is registered by now (or refused): it counts as itself, not as a reservation,
      // while its initialize is answered.
      release();
    }
    return await started.response;
  }

  async #startSession(
    req: Request,
    body: unknown,
  ): Promise<{ response: Response | Promise<Response> }> {
    const { registry, eventLimits } = this.#options;
    let sessionId: string | undefined;
    const events = new BoundedEventStore(eventLimits);
    const transport = new StreamableServerTransport({
      sessionId: () => crypto.randomUUID(),
      events,
      streamAfterMs: this.#options.streamAfterMs,
      onabandon: (ids) => bridge.abandon(ids),
      ondelete: () => void bridge.close("the client ended the session"),
      onsessioninitialized: (id) => {
        sessionId = id;
        this.#streamable.set(id, { transport, events, bridge });
        registry.add({
          id,
          kind: "streamable",
          route: this.prefix,
          busy: () => bridge.busy,
          close: (reason) => bridge.close(reason),
        });
        log.debug(`session ${id} opened on ${this.prefix}/mcp`);
      },
    });
    const bridge = new Bridge(transport, this.#options.upstream(), {
      ...this.#options.bridge,
      onActivity: () => sessionId && registry.touch(sessionId),
      onClose: () => {
        if (sessionId === undefined) return;
        this.#streamable.delete(sessionId);
        registry.delete(sessionId);
        log.debug(`session ${sessionId} closed`);
      },
    });
    const failed = await startBridge(bridge, (body as { id: string | number }).id);
    if (failed) return { response: failed };
    const response = transport.handleRequest(req, { parsedBody: body });
    // Refused before a session began (e.g. 406 for a bad Accept): nothing may keep the child.
    if (sessionId === undefined) await bridge.close("the initialize request was refused");
    return { response };
  }

  async #stateless(req: Request, completed: Promise<void>): Promise<Response> {
    if (req.method !== "POST") return methodNotAllowed("POST");
    const body = await readJsonBody(req, this.#options.maxBody);
    if (!body.ok) return body.response;
    const transport = new StreamableServerTransport({ streamAfterMs: this.#options.streamAfterMs });
    const bridge = new Bridge(transport, this.#shared!.connect(), this.#options.bridge);
    const failed = await startBridge(bridge, null);
    if (failed) return failed;
    // Done when the answer is delivered, or the client left (its requests are then cancelled).
    const close = () => void bridge.close("the client disconnected");
    completed.then(close, close);
    return transport.handleRequest(req, { parsedBody: body.value });
  }

  #sseOpen(req: Request): Response {
    if (req.method !== "GET") return methodNotAllowed("GET");
    const { registry } = this.#options;
    const release = registry.reserve();
    if (!release) return tooManySessions(registry.maxSessions);
    release();
    const transport = new SseServerTransport(`${this.prefix}/message`);
    const id = transport.sessionId;
    const upstream = this.#shared ? this.#shared.connect() : this.#options.upstream();
    const bridge = new Bridge(transport, upstream, {
      ...this.#options.bridge,
      onActivity: () => registry.touch(id),
      onClose: () => {
        this.#sse.delete(id);
        registry.delete(id);
        log.debug(`SSE session ${id} closed`);
      },
    });
    this.#sse.set(id, transport);
    registry.add({
      id,
      kind: "sse",
      route: this.prefix,
      busy: () => bridge.busy,
      close: (reason) => bridge.close(reason),
    });
    bridge.start().catch((error) => {
      log.error(formatError(error));
      void transport.send({
        jsonrpc: "2.0",
        method: "notifications/message",
        params: { level: "error", logger: "mcp-proxy", data: redact(formatError(error)) },
      }).finally(() => bridge.close());
    });
    log.debug(`SSE session ${id} opened on ${this.prefix}/sse`);
    return transport.response;
  }

  async #ssePost(req: Request): Promise<Response> {
    if (req.method !== "POST") return methodNotAllowed("POST");
    const id = new URL(req.url).searchParams.get("sessionId");
    if (!id) {
      return jsonRpcErrorResponse(
        400,
        -32000,
        "Bad Request: the sessionId query parameter is required",
      );
    }
    const transport = this.#sse.get(id);
    if (!transport) return sessionNotFound(id);
    this.#options.registry.touch(id);
    const body = await readJsonBody(req, this.#options.maxBody);
    if (!body.ok) return body.response;
    transport.receive(Array.isArray(body.value) ? body.value : [body.value]);
    return new Response("Accepted", { status: 202 });
  }
}

/** Whether a checked body is one initialize request (a session starts with nothing else). */
function isInitialize(body: unknown): boolean {
  const message = body as JSONRPCMessage;
  return !Array.isArray(body) && isRequest(message) && message.method === "initialize";
}

/** Starts a bridge; on failure (the child cannot be spawned) answers with a 502 naming why. */
async function startBridge(
  bridge: Bridge,
  id: string | number | null,
): Promise<Response | undefined> {
  try {
    await bridge.start();
    return undefined;
  } catch (error) {
    const reason = formatError(error);
    log.error(reason);
    await bridge.close();
    const message = redact(reason);
    return Response.json({ jsonrpc: "2.0", id, error: { code: UPSTREAM_ERROR, message } }, {
      status: 502,
    });
  }
}

/** 503 with Retry-After: --max-sessions are open. */
function tooManySessions(max: number): Response {
  return jsonRpcErrorResponse(
    503,
    -32000,
    `Service Unavailable: ${max} sessions are open, the most --max-sessions allows; ` +
      "try again later, or end idle sessions",
    { "retry-after": "1" },
  );
}

function sessionNotFound(id: string): Response {
  return jsonRpcErrorResponse(
    404,
    SESSION_NOT_FOUND,
    `Session not found: "${id}" is unknown or has ended; start a new session with initialize`,
  );
}

function methodNotAllowed(allow: string): Response {
  return jsonRpcErrorResponse(405, -32000, `Method not allowed; use ${allow}`, { allow });
}
