// The HTTP front: Deno.serve with the guards, /health and /ping, and the MCP endpoints; shutdown
// stops accepting, ends every session (and so every child), then waits for the server to drain.

import { formatError, permissionError, ProxyError } from "../errors.ts";
import { log } from "../log.ts";
import { runningChildren } from "../upstream/child.ts";
import { jsonRpcErrorResponse } from "./body.ts";
import type { McpEndpoint } from "./endpoint.ts";
import { type GuardOptions, Guards } from "./guards.ts";
import type { SessionRegistry } from "./sessions.ts";

export interface HttpServerOptions extends GuardOptions {
  port: number;
  endpoints: readonly McpEndpoint[];
  registry: SessionRegistry;
  version: string;
  stateless: boolean;
  /** More to report on /health (the gateway's servers); `ok: false` answers 503. */
  health?: () => { ok: boolean; report: Record<string, unknown> };
  /** How long shutdown waits for responses still being written (a client reading nothing). */
  drainMs?: number;
}

export interface RunningServer {
  /** Base URL clients use, e.g. http://127.0.0.1:8080 */
  readonly url: string;
  readonly port: number;
  /** Ends every session and stops the server; resolves when it has drained. */
  shutdown(): Promise<void>;
}

/** Binds and starts serving; throws a ProxyError naming the address when it cannot listen. */
export function startHttpServer(options: HttpServerOptions): RunningServer {
  const guards = new Guards(options);
  const started = performance.now();
  const health = () => {
    const endpoints = options.endpoints.map((endpoint) => endpoint.health());
    const extra = options.health?.();
    const ok = endpoints.every((endpoint) => endpoint.ok) && extra?.ok !== false;
    const shared = endpoints.find((endpoint) => endpoint.shared)?.shared;
    return {
      status: ok ? "ok" : "failing",
      version: options.version,
      mode: options.stateless ? "stateless" : "stateful",
      uptimeSeconds: Math.round((performance.now() - started) / 1000),
      sessions: {
        streamable: options.registry.count("streamable"),
        sse: options.registry.count("sse"),
      },
      children: runningChildren(),
      ...(shared ? { server: shared } : {}),
      ...extra?.report,
    };
  };

  const handler = async (req: Request, info: Deno.ServeHandlerInfo): Promise<Response> => {
    const wrongHost = guards.checkHost(req);
    if (wrongHost) return wrongHost;
    let path: string;
    try {
      path = new URL(req.url).pathname;
    } catch {
      return jsonRpcErrorResponse(400, -32000, "Bad Request: the request's URL is not valid");
    }
    if (path === "/health" || path === "/ping") {
      if (req.method !== "GET" && req.method !== "HEAD") {
        return jsonRpcErrorResponse(405, -32000, "Method not allowed; use GET", { allow: "GET" });
      }
      const report = health();
      return Response.json(report, {
        status: report.status === "ok" ? 200 : 503,
        headers: { "cache-control": "no-store" },
      });
    }
    const refused = guards.checkOrigin(req);
    if (refused) return refused;
    if (req.method === "OPTIONS") return guards.preflight(req);
    const cors = guards.corsHeaders(req);
    const endpoint = options.endpoints.find((candidate) => candidate.matches(path));
    const response = await guards.checkApiKey(req, endpoint?.keys) ??
      await route(req, path, info.completed);
    if (cors) {
      for (const [name, value] of Object.entries(cors)) {
        response.headers.set(name, value);
      }
    }
    return response;
  };

  const route = (req: Request, path: string, completed: Promise<void>): Promise<Response> => {
    for (const endpoint of options.endpoints) {
      const answer = endpoint.handle(req, path, completed);
      if (answer) return answer;
    }
    const routes = options.endpoints.map((e) => `${e.prefix}/mcp and ${e.prefix}/sse`).join(", ");
    return Promise.resolve(
      jsonRpcErrorResponse(404, -32000, `Not found: nothing is served at ${path}; try ${routes}`),
    );
  };

  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: options.hostname,
      port: options.port,
      onListen: () => {},
      onError: (error) => {
        log.error(`request failed: ${formatError(error)}`);
        return jsonRpcErrorResponse(500, -32603, "Internal error");
      },
    }, handler);
  } catch (error) {
    throw listenError(options.hostname, options.port, error);
  }
  const { port } = server.addr;
  const host = options.hostname.includes(":") ? `[${options.hostname}]` : options.hostname;
  const shownHost = host === "0.0.0.0" || host === "[::]" ? "127.0.0.1" : host;
  let stopping: Promise<void> | undefined;
  return {
    url: `http://${shownHost}:${port}`,
    port,
    shutdown: () => {
      stopping ??= (async () => {
        const drained = server.shutdown();
        await options.registry.closeAll("mcp-proxy is shutting down");
        await Promise.allSettled(options.endpoints.map((endpoint) => endpoint.close()));
        // Every answer was sent; a client that does not read it does not hold the exit.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, options.drainMs ?? 3000);
        });
        await Promise.race([drained, late]);
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}

function listenError(hostname: string, port: number, error: unknown): ProxyError {
  const denied = permissionError(error);
  if (denied) return denied;
  const where = `${hostname}:${port}`;
  if (error instanceof Deno.errors.AddrInUse) {
    return new ProxyError(
      "listen",
      `cannot listen on ${where}: the port is in use; choose another with --port`,
      { cause: error },
    );
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return new ProxyError(
      "listen",
      `cannot listen on ${where}: no such local address; check --host`,
      { cause: error },
    );
  }
  return new ProxyError("listen", `cannot listen on ${where}`, { cause: error });
}
