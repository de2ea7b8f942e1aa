// `mcp-proxy serve`: wires a stdio server, a remote URL or the built-in demo to the HTTP front,
// prints where it listens, and on SIGINT/SIGTERM ends every session and child, then exit code 0.

import type { ServeOptions } from "./cli.ts";
import { McpEndpoint } from "./downstream/endpoint.ts";
import { DEFAULT_EVENT_LIMITS } from "./downstream/event_store.ts";
import { startHttpServer } from "./downstream/http.ts";
import { SessionRegistry } from "./downstream/sessions.ts";
import { NameFilter } from "./filter.ts";
import { addSecret, log } from "./log.ts";
import { granted, readEnv, requirePermission } from "./permissions.ts";
import { ChildTransport, killAllChildren, type UpstreamTransport } from "./upstream/child.ts";
import { SparePool } from "./upstream/spares.ts";
import { VERSION } from "./version.ts";

export interface ServeHandle {
  readonly url: string;
  /** Resolves when the server has stopped (after a signal or `stop()`). */
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

/** Starts serving; resolves once listening. Throws ProxyError when it cannot listen. */
export async function startServe(options: ServeOptions): Promise<ServeHandle> {
  if (options.apiKey) addSecret(options.apiKey);
  if (options.config !== undefined) return await startGateway(options, options.config);
  const { command } = options;
  if (command) {
    requirePermission(
      { name: "run", command: command.command },
      `mcp-proxy needs to run "${command.command}"`,
    );
  }
  const { remote } = options;
  // Loaded only when used: the SDK's modules take longer to load than a stdio child to start.
  const remoteSide = remote
    ? await (await import("./connect.ts")).remoteUpstream(remote)
    : undefined;
  const demo = command || remote ? undefined : (await import("./upstream/demo.ts")).demoUpstream;
  const child = command &&
    (() =>
      new ChildTransport({
        command: command.command,
        args: command.args,
        cwd: options.cwd,
        env: options.env,
        killGraceMs: options.shutdownGraceMs,
      }));
  const spares = child && options.prewarm > 0 ? new SparePool(child, options.prewarm) : undefined;
  const upstream: () => UpstreamTransport = remoteSide
    ? remoteSide.open
    : spares
    ? () => spares.take()
    : child ?? (() => demo!(VERSION));
  const registry = new SessionRegistry(options.sessionTimeoutMs, options.maxSessions);
  const endpoint = new McpEndpoint({
    prefix: "",
    upstream,
    stateless: options.stateless,
    restart: options.restart,
    maxBody: options.maxBody,
    eventLimits: DEFAULT_EVENT_LIMITS,
    streamAfterMs: options.streamAfterMs,
    registry,
    bridge: {
      filter: { tools: new NameFilter(options.tools) },
      requestTimeoutMs: remote?.timeoutMs ?? (options.commandTimeoutMs || undefined),
      holdClock: remoteSide?.waitingForUser,
    },
  });
  const server = startHttpServer({
    hostname: options.host,
    port: options.port,
    allowedHosts: options.allowedHosts,
    corsOrigins: options.corsOrigins,
    apiKey: options.apiKey,
    endpoints: [endpoint],
    registry,
    version: VERSION,
    stateless: options.stateless,
    health: spares && (() => ({ ok: true, report: { spares: spares.ready } })),
    drainMs: options.shutdownGraceMs,
  });
  const what = remote
    ? (await import("./upstream/remote_probe.ts")).shownUrl(remote.url)
    : command
    ? `"${[command.command, ...command.args].join(" ")}"`
    : "the built-in demo server";
  log.info(`serving ${what}${options.stateless ? " (stateless)" : ""}`);
  log.info(`Streamable HTTP: ${server.url}/mcp`);
  log.info(`SSE:             ${server.url}/sse`);
  if ((options.host === "0.0.0.0" || options.host === "::") && options.allowedHosts.length === 0) {
    log.warn(
      `listening on all interfaces, but only local Host names are accepted; ` +
        `add the names clients use with --allowed-host`,
    );
  }
  if (!options.apiKey && !granted({ name: "env", variable: "MCP_PROXY_API_KEY" })) {
    log.warn(
      "MCP_PROXY_API_KEY cannot be read without --allow-env=MCP_PROXY_API_KEY, so no API key " +
        "is enforced; grant it, or pass --api-key",
    );
  }
  if (options.stateless) {
    endpoint.warm().catch((error) => log.error(`cannot start the shared server: ${error}`));
  }

  return handleSignals(server.url, async () => {
    await Promise.all([spares?.close(), server.shutdown()]);
  });
}

/**
 * SIGINT/SIGTERM stop (a second one kills every child at once); SIGHUP calls `reload` where
 * there is one (not on Windows).
 */
function handleSignals(
  url: string,
  shutdown: () => Promise<void>,
  reload?: () => void,
): ServeHandle {
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGINT", "SIGTERM"];
  const onHangup = () => {
    log.info("SIGHUP: reloading the config");
    reload?.();
  };
  if (reload && Deno.build.os !== "windows") Deno.addSignalListener("SIGHUP", onHangup);
  let stopping = false;
  const stop = async () => {
    stopping = true;
    await shutdown();
    for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
    if (reload && Deno.build.os !== "windows") Deno.removeSignalListener("SIGHUP", onHangup);
    resolveDone();
  };
  const onSignal = () => {
    if (stopping) {
      // A second signal while children get their grace period: do not wait, and leave nothing.
      log.info("stopping now: killing every MCP server process");
      killAllChildren();
      return;
    }
    log.info("shutting down");
    void stop();
  };
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);
  return { url, done, stop };
}

/** --config --check: loads and validates; a summary line, or a ConfigError listing problems. */
export async function checkConfig(options: ServeOptions): Promise<string> {
  const { loadConfig } = await import("./gateway/config.ts");
  const config = await loadConfig(options.config!, {
    env: readEnv,
    allowHttp: options.allowHttpConfig,
  });
  const names = config.servers.map((server) => server.name).join(", ");
  return `${options.config}: valid, ${config.servers.length} server(s): ${names}`;
}

async function startGateway(options: ServeOptions, location: string): Promise<ServeHandle> {
  const { loadConfig } = await import("./gateway/config.ts");
  const { Gateway } = await import("./gateway/gateway.ts");
  const config = await loadConfig(location, { env: readEnv, allowHttp: options.allowHttpConfig });
  const serve: ServeOptions = {
    ...options,
    host: options.explicit.host ? options.host : config.host ?? options.host,
    port: options.explicit.port ? options.port : config.port ?? options.port,
  };
  const gateway = new Gateway({ serve, location, config, watch: options.watch, env: readEnv });
  const url = await gateway.start();
  return handleSignals(url, () => gateway.stop(), () => void gateway.reload());
}
