// `mcp-proxy serve`: its flags, help text and options. The upstream is a command (after the
// flags, or after --), a URL, or nothing (the built-in demo).

import {
  type CommonOptions,
  duration,
  type EnvAccess,
  envPairs,
  type FlagSpec,
  host,
  list,
  LOG_FLAGS,
  logLevel,
  nonEmpty,
  origin,
  parseFlags,
  port,
  size,
  splitAtCommand,
  str,
  usageFor,
} from "./cli_parse.ts";
import {
  FILTER_FLAGS,
  OAUTH_FLAGS,
  type OAuthSpec,
  parseOAuth,
  parseRemote,
  parseToolFilter,
  REMOTE_FLAGS,
  remoteFlagsGiven,
  type RemoteSpec,
} from "./cli_remote.ts";
import { UsageError } from "./errors.ts";
import type { FilterRules } from "./filter.ts";

export interface ServeOptions extends CommonOptions {
  mode: "serve";
  host: string;
  port: number;
  /** The stdio server to spawn; with no command and no remote, the built-in demo is served. */
  command?: { command: string; args: string[] };
  /** A remote server to expose instead of a command. */
  remote?: RemoteSpec;
  /** --config: a gateway of many servers, from this path or URL. */
  config?: string;
  /** --check: validate the config and exit. */
  check: boolean;
  /** --watch: reload the config file when it changes. */
  watch: boolean;
  /** --port/--host given on the command line (they win over the config's). */
  explicit: { host: boolean; port: boolean };
  /** --allow-http with --config: plain-HTTP config URLs and remote servers. */
  allowHttpConfig: boolean;
  /** OAuth settings for remote servers of a config. */
  oauthDefaults?: OAuthSpec;
  cwd?: string;
  env: Record<string, string>;
  tools: FilterRules;
  sessionTimeoutMs: number;
  /** --stream-after: a lone request answered within this goes back as JSON; 0 always streams. */
  streamAfterMs: number;
  stateless: boolean;
  /** --prewarm: spare children kept started for the next sessions (a command upstream only). */
  prewarm: number;
  /** --timeout with a command: a request its server has not answered by then fails; 0 never. */
  commandTimeoutMs: number;
  /** --max-sessions: sessions open at once, beyond which a new one gets 503; 0 for no limit. */
  maxSessions: number;
  /** --restart: a crashed shared server (--stateless) is started again at once, with backoff. */
  restart: boolean;
  apiKey?: string;
  allowedHosts: string[];
  corsOrigins: string[];
  maxBody: number;
  shutdownGraceMs: number;
}

export const SERVE_FLAGS: FlagSpec[] = [
  {
    name: "port",
    type: "string",
    short: "p",
    arg: "<port>",
    help: "port to listen on, 0 picks a free one (default 8080)",
  },
  { name: "host", type: "string", arg: "<addr>", help: "address to listen on (default 127.0.0.1)" },
  { name: "cwd", type: "string", arg: "<dir>", help: "working directory of the server process" },
  {
    name: "env",
    type: "string",
    multiple: true,
    arg: "<KEY=VALUE>",
    help: "set an environment variable for the server process (repeatable)",
  },
  {
    name: "stateless",
    type: "boolean",
    help: "no sessions: one warm server process answers every request",
  },
  {
    name: "max-sessions",
    type: "string",
    arg: "<n>",
    help: "refuse new sessions with 503 while n are open (default 0, no limit)",
  },
  {
    name: "restart",
    type: "boolean",
    help: "with --stateless: restart the server at once when it exits, with backoff",
  },
  {
    name: "prewarm",
    type: "string",
    arg: "<n>",
    help: "keep n server processes started ahead, so a new session does not wait (default 0)",
  },
  {
    name: "session-timeout",
    type: "string",
    arg: "<duration>",
    help: "end sessions idle this long, 0 never (default 5m)",
  },
  {
    name: "stream-after",
    type: "string",
    arg: "<duration>",
    help: "answer a request as JSON if ready this soon, else as an event stream; 0 always " +
      "streams (default 100ms)",
  },
  {
    name: "api-key",
    type: "string",
    arg: "<key>",
    help: "require this key as Bearer token or X-API-Key (env MCP_PROXY_API_KEY)",
  },
  {
    name: "allowed-host",
    type: "string",
    multiple: true,
    arg: "<host>",
    help: "accept this Host header besides local names (repeatable, * for any)",
  },
  {
    name: "cors-origin",
    type: "string",
    multiple: true,
    arg: "<origin>",
    help: "allow this browser origin besides local ones (repeatable, * for any)",
  },
  {
    name: "max-body",
    type: "string",
    arg: "<size>",
    help: "largest request body accepted (default 4mb)",
  },
  {
    name: "shutdown-grace",
    type: "string",
    arg: "<duration>",
    help: "wait this long after SIGTERM before SIGKILL of a server process (default 3s)",
  },
  {
    name: "config",
    type: "string",
    arg: "<file or url>",
    help: "serve every server of an mcpServers config, each on /<name>/mcp, merged on /mcp",
  },
  { name: "check", type: "boolean", help: "with --config: validate it and exit" },
  { name: "watch", type: "boolean", help: "with --config: reload it when the file changes" },
  ...FILTER_FLAGS,
  ...REMOTE_FLAGS,
  ...OAUTH_FLAGS,
  ...LOG_FLAGS,
];

const ENV_API_KEY = "MCP_PROXY_API_KEY";

/** Remote flags that also mean something with --config (plain HTTP, OAuth defaults). */
const CONFIG_FLAGS = new Set([
  "--allow-http",
  ...OAUTH_FLAGS.map((flag) => `--${flag.name}`),
]);

const SERVE_USAGE = `Usage: mcp-proxy serve [flags] [-- <command> [args...]]
       mcp-proxy serve [flags] <url>
       mcp-proxy serve [flags] --config <file or url> [--check] [--watch]

Spawns <command> as a stdio MCP server (one process per session, never through a shell), or
connects to the MCP server at <url> (one remote session per client session), and serves it
over Streamable HTTP at /mcp and legacy SSE at /sse + /message, with /health. Without either,
serves the built-in demo server. Flags go before the command; everything from the command on
(or after --) is passed to it untouched. With --config, every server of an mcpServers file is
served on /<name>/mcp and /<name>/sse, and all of them merged on /mcp.

Examples:
  mcp-proxy serve --port 8080 -- npx -y @modelcontextprotocol/server-everything
  mcp-proxy serve --port 8080 https://mcp.example.com/mcp --header "Authorization: Bearer \${TOKEN}"`;

export function parseServe(args: readonly string[], env: EnvAccess): ServeOptions | {
  mode: "help";
  text: string;
} {
  const split = splitAtCommand(args, SERVE_FLAGS, "serve");
  const [command, ...commandArgs] = split.rest;
  const isUrl = command !== undefined && /^[a-z][a-z0-9+.-]*:\/\//i.test(command);
  // A URL takes no arguments, so flags may follow it too.
  const after = isUrl ? splitAtCommand(commandArgs, SERVE_FLAGS, "serve") : undefined;
  if (after && after.rest.length > 0) {
    throw new UsageError(`serve takes one URL (got also "${after.rest[0]}")`);
  }
  const flags = after ? [...split.flags, ...after.flags] : split.flags;
  const values = parseFlags(flags, "serve");
  if (values.help) return { mode: "help", text: usageFor(SERVE_USAGE, SERVE_FLAGS) };
  const config = str(values.config);
  if (config !== undefined && command !== undefined) {
    throw new UsageError(
      `serve takes --config or an upstream, not both (got also "${command}")`,
    );
  }
  for (const flag of ["check", "watch"] as const) {
    if (values[flag] && config === undefined) throw new UsageError(`--${flag} needs --config`);
  }
  const remoteOnly = remoteFlagsGiven(values).filter((flag) =>
    (config === undefined || !CONFIG_FLAGS.has(flag)) &&
    // A stdio server's requests may be bounded too (none by default).
    !(flag === "--timeout" && config === undefined && command !== undefined)
  );
  if (!isUrl && remoteOnly.length > 0) {
    throw new UsageError(`${remoteOnly[0]} only applies when serve's upstream is a URL`);
  }
  if (config !== undefined) {
    const local = ["cwd", "env", "allow-tool", "ignore-tool"].find((f) => values[f] !== undefined);
    if (local) {
      throw new UsageError(`--${local} does not apply with --config; set it per server there`);
    }
  }
  for (const flag of ["cwd", "env"] as const) {
    if (isUrl && values[flag] !== undefined) {
      throw new UsageError(`--${flag} only applies when serve's upstream is a command`);
    }
  }
  const apiKey = str(values["api-key"]) ?? env.get(ENV_API_KEY);
  if (apiKey !== undefined && apiKey.trim() === "") {
    throw new UsageError(`--api-key must not be empty (${ENV_API_KEY} counts too)`);
  }
  const cwd = str(values.cwd);
  if (cwd !== undefined && cwd === "") throw new UsageError("--cwd must not be empty");
  const prewarm = spareCount(str(values.prewarm));
  if (prewarm > 0 && (command === undefined || isUrl || config !== undefined)) {
    throw new UsageError("--prewarm applies when serve's upstream is a command (serve -- <cmd>)");
  }
  if (prewarm > 0 && values.stateless) {
    throw new UsageError("--prewarm does not apply with --stateless: its one server is warm");
  }
  if (values.restart && !values.stateless) {
    throw new UsageError(
      "--restart applies with --stateless (sessions get a fresh server each; gateway servers " +
        "always restart)",
    );
  }
  const listenHost = host(str(values.host) ?? "127.0.0.1");
  return {
    mode: "serve",
    logLevel: logLevel(values),
    config: config === undefined ? undefined : nonEmpty("--config", config),
    check: values.check === true,
    watch: values.watch === true,
    explicit: { host: values.host !== undefined, port: values.port !== undefined },
    allowHttpConfig: values["allow-http"] === true,
    oauthDefaults: config === undefined ? undefined : parseOAuth(values, env, "127.0.0.1"),
    host: listenHost,
    port: port(str(values.port) ?? "8080"),
    command: command === undefined || isUrl ? undefined : { command, args: commandArgs },
    remote: isUrl ? parseRemote(command, values, env, "127.0.0.1") : undefined,
    cwd,
    env: envPairs(list(values.env)),
    tools: parseToolFilter(values),
    sessionTimeoutMs: duration("--session-timeout", str(values["session-timeout"]) ?? "5m"),
    streamAfterMs: duration("--stream-after", str(values["stream-after"]) ?? "100ms"),
    stateless: values.stateless === true,
    prewarm,
    commandTimeoutMs: isUrl || values.timeout === undefined
      ? 0
      : duration("--timeout", str(values.timeout)!),
    maxSessions: count("--max-sessions", str(values["max-sessions"]), 1_000_000),
    restart: values.restart === true,
    apiKey,
    allowedHosts: list(values["allowed-host"]).map((h) => nonEmpty("--allowed-host", h)),
    corsOrigins: list(values["cors-origin"]).map(origin),
    maxBody: size("--max-body", str(values["max-body"]) ?? "4mb"),
    shutdownGraceMs: duration("--shutdown-grace", str(values["shutdown-grace"]) ?? "3s"),
  };
}

/** --prewarm's count: 0 to 64. */
function spareCount(value: string | undefined): number {
  if (value === undefined) return 0;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 64) {
    throw new UsageError(`--prewarm must be a number of processes, 0-64 (got "${value}")`);
  }
  return n;
}

/** A whole number from 0 to `max`; 0 when not given. */
function count(flag: string, value: string | undefined, max: number): number {
  if (value === undefined) return 0;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > max) {
    throw new UsageError(`${flag} must be a whole number, 0-${max} (got "${value}")`);
  }
  return n;
}
