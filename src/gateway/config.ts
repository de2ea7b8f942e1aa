// The gateway's config (serve --config): the `mcpServers` shape MCP clients use, per-server
// `options` and an `mcpProxy` section; JSON with comments, ${VAR} interpolated, every problem
// reported with its JSON path. Loaded from a file or an http(s) URL.

// Rules worth knowing:
// - A server has exactly one of `command` (stdio) or `url` (remote). The `type` / `transportType`
//   keys clients write are accepted when they agree with that: "stdio" for a command; "sse",
//   "http", "streamable-http" or "streamableHttp" for a URL, where they also set `transport`
//   ("http" means streamable-http). An explicit `transport` must then say the same.
// - A server URL is http or https; plain http only to localhost, 127.0.0.1 or [::1] unless
//   `allowHttp` (--allow-http). Relative `cwd` is relative to the proxy's working directory.
// - `timeout` is a duration ("30s", "5m", "500ms"; 0 = none) or a number of seconds;
//   `mcpProxy.port` a number or a string of digits (so "${PORT}" works).
// - `mcpProxy.options` holds defaults (toolFilter, authTokens, timeout, required); a server's
//   `options` override them key by key. A disabled server is never required.
// - The merged separator must not be part of a server name (merged names are <server><sep><tool>,
//   split at the first separator); checked only while the merged route is enabled.
// - loadConfig fetches a config URL only over https, or plain http when `allowHttp` (even to
//   localhost: the file can start commands); the same `allowHttp` applies to server URLs.
// - A top-level "$schema" key is allowed and ignored. `${VAR}` is replaced in every string
//   value (not in keys); a reference to an unset variable is a problem.

import { fileURLToPath } from "node:url";
import { formatError, permissionError, ProxyError, UsageError } from "../errors.ts";
import type { FetchLike } from "../sdk.ts";
import { netFetch } from "../upstream/http_fetch.ts";
import { Checker, type ConfigEnv, ConfigError, formatPath, isObject } from "./config_check.ts";
import { DEFAULT_OPTION_KEYS, parseOptions, serverConfig } from "./config_server.ts";
import { JsoncError, type JsonPath, keysInOrder, parseJsonc } from "./jsonc.ts";

export { ConfigError } from "./config_check.ts";
export type { ConfigEnv } from "./config_check.ts";

export type TransportChoice = "streamable-http" | "sse" | "auto";
export interface ToolFilterConfig {
  mode: "allow" | "block";
  list: string[];
}
export interface ServerOptions {
  /** Applies to tools, prompts and resources. */
  toolFilter?: ToolFilterConfig;
  /** Bearer tokens accepted on this server's routes ([] = none beyond the global key). */
  authTokens: string[];
  /** Per-request timeout for this upstream; 0 waits as long as the connection lives. */
  timeoutMs?: number;
  /** /health answers 503 while it is not ready. */
  required: boolean;
  /** Configured but not started. */
  disabled: boolean;
}
export interface StdioServerConfig {
  kind: "stdio";
  name: string;
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  options: ServerOptions;
}
export interface RemoteServerConfig {
  kind: "remote";
  name: string;
  url: string;
  headers: Record<string, string>;
  transport: TransportChoice;
  options: ServerOptions;
}
export type ServerConfig = StdioServerConfig | RemoteServerConfig;
export interface GatewayConfig {
  host?: string;
  port?: number;
  /** route "" means /mcp and /sse; "/all" means /all/mcp and /all/sse. */
  merged: { enabled: boolean; route: string; name: string; separator: string };
  /** In file order. */
  servers: ServerConfig[];
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const RESERVED_NAMES = ["health", "ping", "mcp", "sse", "message", "messages"];
const SEPARATOR = /^[_.-]{1,4}$/;
const TOP_KEYS = ["mcpProxy", "mcpServers", "$schema"];
const PROXY_KEYS = ["host", "port", "merged", "options"];
const MERGED_DEFAULTS = { enabled: true, route: "", name: "mcp-proxy", separator: "__" };
const MERGED_KEYS = ["enabled", "route", "name", "separator"];

/**
 * Parses and validates config text (JSON with // and /* *\/ comments and trailing commas).
 * `source` names the file or URL in messages. Throws ConfigError listing every problem.
 * `allowHttp` accepts plain http:// server URLs to any host, not only loopback ones.
 */
export function parseConfig(
  text: string,
  source: string,
  env: ConfigEnv,
  options: { allowHttp?: boolean } = {},
): GatewayConfig {
  let document;
  try {
    document = parseJsonc(text);
  } catch (error) {
    if (error instanceof JsoncError) throw new ConfigError(source, [error.message]);
    throw error;
  }
  const c = new Checker(env);
  for (const { path, key } of document.duplicates) {
    c.problems.push(`duplicate key ${JSON.stringify(key)} at ${formatPath(path)}; keep one`);
  }
  const root = c.object([], document.value, TOP_KEYS, 'an object like {"mcpServers": {...}}');
  const config = root ? gateway(c, root, options.allowHttp === true) : undefined;
  if (!config || c.problems.length > 0) throw new ConfigError(source, c.problems);
  return config;
}

function gateway(c: Checker, root: Record<string, unknown>, allowHttp: boolean): GatewayConfig {
  const proxy = root.mcpProxy === undefined
    ? {}
    : c.object(["mcpProxy"], root.mcpProxy, PROXY_KEYS) ?? {};
  const config: GatewayConfig = { merged: { ...MERGED_DEFAULTS }, servers: [] };
  if (proxy.host !== undefined) {
    const host = c.text(["mcpProxy", "host"], proxy.host, "a host name or address");
    if (host !== undefined) config.host = host.trim().replace(/^\[(.*)\]$/, "$1");
  }
  if (proxy.port !== undefined) {
    const port = listenPort(c, ["mcpProxy", "port"], proxy.port);
    if (port !== undefined) config.port = port;
  }
  config.merged = merged(c, proxy.merged);
  const defaults = parseOptions(c, ["mcpProxy", "options"], proxy.options, DEFAULT_OPTION_KEYS);
  const what = 'an object of servers like {"name": {"command": "..."}}';
  if (root.mcpServers === undefined) {
    c.missing(["mcpServers"], what);
    return config;
  }
  if (!isObject(root.mcpServers)) {
    c.expected(["mcpServers"], what, root.mcpServers);
    return config;
  }
  const names = keysInOrder(root.mcpServers);
  if (names.length === 0) c.expected(["mcpServers"], "at least one server", {});
  for (const name of names) {
    serverName(c, name, config.merged);
    const server = serverConfig(c, name, root.mcpServers[name], { defaults, allowHttp });
    if (server) config.servers.push(server);
  }
  const route = config.merged.route.slice(1);
  if (config.merged.enabled && route !== "" && names.includes(route)) {
    c.at(
      ["mcpProxy", "merged", "route"],
      `"/${route}" is also the route of server "${route}"; choose another route`,
    );
  }
  return config;
}

function merged(c: Checker, value: unknown): GatewayConfig["merged"] {
  const out = { ...MERGED_DEFAULTS };
  if (value === undefined) return out;
  const o = c.object(["mcpProxy", "merged"], value, MERGED_KEYS);
  if (!o) return out;
  const path = (key: string): JsonPath => ["mcpProxy", "merged", key];
  if (o.enabled !== undefined) out.enabled = c.boolean(path("enabled"), o.enabled) ?? true;
  if (o.name !== undefined) out.name = c.text(path("name"), o.name) ?? out.name;
  if (o.route !== undefined) {
    const route = c.string(path("route"), o.route);
    if (route !== undefined && route !== "") {
      const segment = route.slice(1);
      if (!route.startsWith("/") || !NAME.test(segment)) {
        c.expected(path("route"), '"" (/mcp and /sse) or "/" and a name, like "/all"', route);
      } else if (RESERVED_NAMES.includes(segment.toLowerCase())) {
        c.at(path("route"), `"${route}" is reserved; choose another route`);
      } else {
        out.route = route;
      }
    }
  }
  if (o.separator !== undefined) {
    const separator = c.string(path("separator"), o.separator);
    if (separator !== undefined && !SEPARATOR.test(separator)) {
      c.expected(path("separator"), "1-4 characters of _ . -", separator);
    } else if (separator !== undefined) {
      out.separator = separator;
    }
  }
  return out;
}

function listenPort(c: Checker, path: JsonPath, value: unknown): number | undefined {
  const text = typeof value === "string" ? c.string(path, value) : undefined;
  const port = typeof value === "number" ? value : text && /^\d+$/.test(text) ? Number(text) : NaN;
  if (Number.isInteger(port) && port >= 0 && port <= 65535) return port;
  if (typeof value !== "string" || text !== undefined) {
    c.expected(path, "an integer 0-65535", text ?? value);
  }
  return undefined;
}

function serverName(c: Checker, name: string, merged: GatewayConfig["merged"]): void {
  const path = ["mcpServers", name];
  if (!NAME.test(name)) {
    c.at(
      path,
      "expected a server name of 1-64 letters, digits, _ or - starting with a letter or digit " +
        `(it becomes the route /<name>/mcp), got ${JSON.stringify(name.slice(0, 60))}`,
    );
  } else if (RESERVED_NAMES.includes(name.toLowerCase())) {
    c.at(path, `"${name}" is reserved for a route (${RESERVED_NAMES.join(", ")}); rename it`);
  } else if (merged.enabled && (name + merged.separator).indexOf(merged.separator) < name.length) {
    c.at(
      path,
      `the name clashes with the merged separator "${merged.separator}" (tools would be named ` +
        `"${name}${merged.separator}<tool>"); rename it or change mcpProxy.merged.separator`,
    );
  }
}

const LOAD_TIMEOUT_MS = 30_000;

/** Reads a path (or file: URL), or fetches an http(s) URL (plain http only when allowHttp). */
export async function loadConfig(
  location: string,
  options: { env: ConfigEnv; allowHttp: boolean; fetch?: FetchLike },
): Promise<GatewayConfig> {
  const { text, source } = /^https?:\/\//i.test(location)
    ? await fetchConfig(location, options)
    : await readConfig(location);
  return parseConfig(text, source, options.env, { allowHttp: options.allowHttp });
}

async function readConfig(location: string): Promise<{ text: string; source: string }> {
  let path = location;
  if (/^file:/i.test(location)) {
    try {
      path = fileURLToPath(location);
    } catch {
      throw new UsageError(`--config is not a valid file: URL (got "${location}")`);
    }
  } else if (/^[A-Za-z][A-Za-z0-9+.-]+:\/\//.test(location)) {
    throw new UsageError(`--config must be a file or an https:// URL (got "${location}")`);
  }
  try {
    return { text: await Deno.readTextFile(path), source: path };
  } catch (error) {
    const denied = permissionError(error);
    if (denied) throw denied;
    const why = error instanceof Deno.errors.NotFound ? "no such file" : formatError(error);
    throw new UsageError(`cannot read the config file "${path}": ${why}`);
  }
}

async function fetchConfig(
  location: string,
  options: { allowHttp: boolean; fetch?: FetchLike },
): Promise<{ text: string; source: string }> {
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    throw new UsageError(`--config is not a valid URL (got "${location}")`);
  }
  const source = shownUrl(url);
  if (url.protocol === "http:" && !options.allowHttp) {
    throw new UsageError(
      `the config URL must be https:// (got "${source}"); pass --allow-http to use plain HTTP`,
    );
  }
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), LOAD_TIMEOUT_MS);
  const failed = (error: unknown): never => {
    if (error instanceof ProxyError && error.code === "permission") throw error;
    const why = abort.signal.aborted
      ? `no answer in ${LOAD_TIMEOUT_MS / 1000}s`
      : formatError(error);
    throw new ProxyError("upstream", `cannot load the config from ${source}: ${why}`, {
      cause: error,
    });
  };
  try {
    const response = await (options.fetch ?? netFetch)(url, {
      headers: { accept: "application/json, text/plain;q=0.9, */*;q=0.1" },
      signal: abort.signal,
    }).catch(failed);
    if (!options.allowHttp && response.url.startsWith("http:")) {
      await response.body?.cancel();
      throw new UsageError(
        `the config URL ${source} redirected to plain http:// ` +
          `(${shownUrl(new URL(response.url))}); pass --allow-http to accept that`,
      );
    }
    if (!response.ok) {
      await response.body?.cancel();
      const status = `${response.status} ${response.statusText}`.trim();
      throw new ProxyError("upstream", `cannot load the config from ${source}: HTTP ${status}`);
    }
    return { text: await response.text().catch(failed), source };
  } finally {
    clearTimeout(timer);
  }
}

/** The URL without user, password or query (they may carry secrets). */
function shownUrl(url: URL): string {
  return `${url.origin}${url.pathname}${url.search ? "?..." : ""}`;
}

/** True when two server configs are the same (a reload restarts a server only when not). */
export function sameServer(a: ServerConfig, b: ServerConfig): boolean {
  return equal(a, b);
}

function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length &&
      a.every((item, i) => equal(item, b[i]));
  }
  if (!isObject(a) || !isObject(b)) return false;
  const keys = (o: Record<string, unknown>) => Object.keys(o).filter((k) => o[k] !== undefined);
  const ka = keys(a);
  return ka.length === keys(b).length && ka.every((k) => Object.hasOwn(b, k) && equal(a[k], b[k]));
}
