// `mcp-proxy serve --config servers.json`: every configured server on /<name>/mcp and
// /<name>/sse (a child or remote session per client session, as in serve), all of them merged on
// one route, /health per server, and reloads (SIGHUP, --watch) that touch only what changed.

import { basename, dirname, resolve } from "node:path";
import type { ServeOptions } from "../cli.ts";
import type { RemoteSpec } from "../cli_remote.ts";
import { remoteUpstream } from "../connect.ts";
import { McpEndpoint } from "../downstream/endpoint.ts";
import { DEFAULT_EVENT_LIMITS } from "../downstream/event_store.ts";
import { type RunningServer, startHttpServer } from "../downstream/http.ts";
import { SessionRegistry } from "../downstream/sessions.ts";
import { formatError } from "../errors.ts";
import { NameFilter } from "../filter.ts";
import { addSecret, log } from "../log.ts";
import { ChildTransport, type UpstreamTransport } from "../upstream/child.ts";
import type { Strategy } from "../upstream/remote.ts";
import { VERSION } from "../version.ts";
import { type GatewayConfig, loadConfig, sameServer, type ServerConfig } from "./config.ts";
import { Member } from "./member.ts";
import { MergedServer } from "./merged.ts";

export interface GatewayOptions {
  serve: ServeOptions;
  /** Where the config came from (a path or a URL), for reloads. */
  location: string;
  config: GatewayConfig;
  watch: boolean;
  env: (name: string) => string | undefined;
}

interface Running {
  config: ServerConfig;
  member: Member;
  endpoint?: McpEndpoint;
}

const STRATEGY: Record<string, Strategy> = {
  "streamable-http": "http-only",
  sse: "sse-only",
  auto: "http-first",
};

export class Gateway {
  #options: GatewayOptions;
  #config: GatewayConfig;
  #running = new Map<string, Running>();
  #endpoints: McpEndpoint[] = [];
  #registry: SessionRegistry;
  #merged: MergedServer;
  #server?: RunningServer;
  #watcher?: Deno.FsWatcher;
  #reloading = Promise.resolve();

  constructor(options: GatewayOptions) {
    this.#options = options;
    this.#config = options.config;
    this.#registry = new SessionRegistry(options.serve.sessionTimeoutMs, options.serve.maxSessions);
    const { merged } = options.config;
    this.#merged = new MergedServer(() => [...this.#running.values()].map((r) => r.member), {
      name: merged.name,
      version: VERSION,
      separator: merged.separator,
      filterOf: (name) => this.#filterOf(this.#running.get(name)?.config),
    });
  }

  /** Starts every server and the HTTP front; returns the base URL. */
  async start(): Promise<string> {
    const { serve, config } = this.#options;
    if (config.merged.enabled) {
      this.#endpoints.push(this.#endpoint(config.merged.route, () => this.#merged.open()));
    }
    for (const server of config.servers) await this.#add(server);
    this.#server = startHttpServer({
      hostname: serve.host,
      port: serve.port,
      allowedHosts: serve.allowedHosts,
      corsOrigins: serve.corsOrigins,
      apiKey: serve.apiKey,
      endpoints: this.#endpoints,
      registry: this.#registry,
      version: VERSION,
      stateless: serve.stateless,
      health: () => this.#health(),
      drainMs: serve.shutdownGraceMs,
    });
    const url = this.#server.url;
    if (config.merged.enabled) log.info(`merged: ${url}${config.merged.route}/mcp`);
    for (const { config: server } of this.#running.values()) {
      const state = server.options.disabled ? " (disabled)" : "";
      log.info(`${server.name}: ${url}/${server.name}/mcp${state}`);
    }
    if (this.#options.watch) void this.#watch();
    return url;
  }

  /** Reads the config again and applies it: added servers start, removed stop, changed restart. */
  reload(): Promise<void> {
    this.#reloading = this.#reloading.then(() => this.#reload());
    return this.#reloading;
  }

  async stop(): Promise<void> {
    this.#watcher?.close();
    await this.#server?.shutdown();
    await Promise.allSettled([...this.#running.values()].map(({ member }) => member.stop()));
  }

  async #reload(): Promise<void> {
    let next: GatewayConfig;
    try {
      next = await loadConfig(this.#options.location, {
        env: this.#options.env,
        allowHttp: this.#options.serve.allowHttpConfig,
      });
    } catch (error) {
      log.error(`reload refused, the running config stays: ${formatError(error)}`);
      return;
    }
    const before = this.#config.merged;
    if (JSON.stringify(before) !== JSON.stringify(next.merged)) {
      log.warn("the merged route's settings changed; restart mcp-proxy to apply them");
    }
    const wanted = new Map(next.servers.map((server) => [server.name, server]));
    const changed = new Set<string>();
    for (const [name, running] of [...this.#running]) {
      const update = wanted.get(name);
      if (update && sameServer(update, running.config)) continue;
      await this.#remove(name, update ? "its configuration changed" : "it was removed");
      changed.add(name);
    }
    for (const server of next.servers) {
      if (this.#running.has(server.name)) continue;
      await this.#add(server);
      changed.add(server.name);
    }
    this.#config = next;
    this.#merged.changed();
    log.info(`config reloaded: ${changed.size} server(s) started, stopped or restarted`);
  }

  async #add(server: ServerConfig): Promise<void> {
    const open = await this.#opener(server);
    const member = new Member({
      name: server.name,
      required: server.options.required,
      disabled: server.options.disabled,
      timeoutMs: server.options.timeoutMs,
      open,
      version: VERSION,
    }, {
      changed: () => this.#merged.changed(),
      log: (from, params) => this.#merged.log(from, params),
      resourceUpdated: (from, uri) => this.#merged.resourceUpdated(from, uri),
    });
    const running: Running = { config: server, member };
    if (!server.options.disabled) {
      running.endpoint = this.#endpoint(`/${server.name}`, open, server);
      this.#endpoints.push(running.endpoint);
    }
    this.#running.set(server.name, running);
    member.start();
  }

  async #remove(name: string, why: string): Promise<void> {
    const running = this.#running.get(name);
    if (!running) return;
    log.info(`${name}: stopping (${why})`);
    this.#running.delete(name);
    if (running.endpoint) {
      this.#endpoints.splice(this.#endpoints.indexOf(running.endpoint), 1);
      await this.#registry.closeRoute(running.endpoint.prefix, `server "${name}" ${why}`);
      await running.endpoint.close();
    }
    await running.member.stop();
  }

  #endpoint(prefix: string, open: () => UpstreamTransport, server?: ServerConfig): McpEndpoint {
    const filter = this.#filterOf(server);
    return new McpEndpoint({
      prefix,
      upstream: open,
      stateless: this.#options.serve.stateless,
      restart: this.#options.serve.restart,
      maxBody: this.#options.serve.maxBody,
      eventLimits: DEFAULT_EVENT_LIMITS,
      streamAfterMs: this.#options.serve.streamAfterMs,
      registry: this.#registry,
      authTokens: server?.options.authTokens,
      bridge: {
        filter: filter ? { tools: filter, prompts: filter, resources: filter } : undefined,
        requestTimeoutMs: server?.options.timeoutMs,
        timeoutSource: server ? `the "timeout" option of server "${server.name}"` : undefined,
      },
    });
  }

  #filterOf(server: ServerConfig | undefined): NameFilter | undefined {
    const rule = server?.options.toolFilter;
    if (!rule) return undefined;
    return new NameFilter({
      allow: rule.mode === "allow" ? rule.list : [],
      ignore: rule.mode === "block" ? rule.list : [],
    });
  }

  /** How a new session (or the member) reaches the server: a child, or a remote session. */
  async #opener(server: ServerConfig): Promise<() => UpstreamTransport> {
    if (server.kind === "stdio") {
      return () =>
        new ChildTransport({
          command: server.command,
          args: server.args,
          cwd: server.cwd,
          env: server.env,
          killGraceMs: this.#options.serve.shutdownGraceMs,
        });
    }
    const headers = Object.entries(server.headers);
    for (const [, value] of headers) addSecret(value);
    const spec: RemoteSpec = {
      url: new URL(server.url),
      strategy: STRATEGY[server.transport] ?? "http-first",
      headers,
      timeoutMs: server.options.timeoutMs ?? 60_000,
      connectTimeoutMs: 10_000,
      enableProxy: false,
      allowHttp: this.#options.serve.allowHttpConfig || isLoopback(server.url),
      oauth: headers.some(([name]) => name.toLowerCase() === "authorization")
        ? undefined
        : this.#options.serve.oauthDefaults,
    };
    return (await remoteUpstream(spec)).open;
  }

  #health(): { ok: boolean; report: Record<string, unknown> } {
    const servers: Record<string, unknown> = {};
    let ok = true;
    for (const [name, { member }] of this.#running) {
      servers[name] = member.status;
      if (member.status.required && member.state !== "ready") ok = false;
    }
    return { ok, report: { servers } };
  }

  async #watch(): Promise<void> {
    const location = this.#options.location;
    if (/^https?:\/\//i.test(location)) {
      log.warn("--watch needs a config file; a URL is reloaded on SIGHUP only");
      return;
    }
    // The directory is watched, not the file: editors, `mv` and Kubernetes ConfigMaps replace
    // the file by a rename, after which a watch on the file itself would see nothing more.
    const file = resolve(location);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      this.#watcher = Deno.watchFs(dirname(file), { recursive: false });
      for await (const event of this.#watcher) {
        if (event.kind === "access" || !event.paths.some((path) => touches(path, file))) continue;
        clearTimeout(timer);
        timer = setTimeout(() => void this.reload(), 200);
      }
    } catch (error) {
      log.warn(`cannot watch ${location}: ${formatError(error)}`);
    }
  }
}

/** Whether a watched path is the config file (or, for a ConfigMap, the link swapped under it). */
function touches(path: string, file: string): boolean {
  const changed = resolve(path);
  return changed === file || basename(changed) === "..data" && dirname(changed) === dirname(file);
}

function isLoopback(url: string): boolean {
  try {
    return ["localhost", "127.0.0.1", "[::1]"].includes(new URL(url).hostname);
  } catch {
    return false;
  }
}
