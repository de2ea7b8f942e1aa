// argv -> typed options per mode: syntax (parseArgs), then validation (pure), then environment
// fallbacks (read here only). Also the usage text, generated from the same flag tables.

import { parseArgs } from "node:util";
import { UsageError } from "./errors.ts";
import { LOG_LEVELS, type LogLevel } from "./log.ts";

export interface FlagSpec {
  name: string;
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** Placeholder shown in help, e.g. "<port>". */
  arg?: string;
  help: string;
}

export interface CommonOptions {
  logLevel: LogLevel | "silent";
}

export interface ServeOptions extends CommonOptions {
  mode: "serve";
  host: string;
  port: number;
  /** The stdio server to spawn; undefined serves the built-in demo. */
  command?: { command: string; args: string[] };
  cwd?: string;
  env: Record<string, string>;
  sessionTimeoutMs: number;
  stateless: boolean;
  apiKey?: string;
  allowedHosts: string[];
  corsOrigins: string[];
  maxBody: number;
  shutdownGraceMs: number;
}

export type Command =
  | { mode: "help"; text: string }
  | { mode: "version" }
  | ServeOptions;

const LOG_FLAGS: FlagSpec[] = [
  {
    name: "log-level",
    type: "string",
    arg: "<level>",
    help: "error, warn, info (default) or debug",
  },
  { name: "debug", type: "boolean", help: "same as --log-level debug" },
  { name: "quiet", type: "boolean", help: "log nothing, not even errors (alias --silent)" },
  { name: "silent", type: "boolean", help: "same as --quiet" },
  { name: "help", type: "boolean", short: "h", help: "show this help" },
];

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
    name: "session-timeout",
    type: "string",
    arg: "<duration>",
    help: "end sessions idle this long, 0 never (default 5m)",
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
  ...LOG_FLAGS,
];

const ENV_API_KEY = "MCP_PROXY_API_KEY";

export const MAIN_USAGE = `mcp-proxy: bridge Model Context Protocol transports.

Usage:
  mcp-proxy serve [flags] [-- <command> [args...]]
      Spawn a stdio MCP server per session and expose it over Streamable HTTP at /mcp
      and legacy SSE at /sse. Without a command, serves the built-in demo server.
  mcp-proxy connect <url> [flags]
      (not implemented yet) Let a stdio MCP client reach a remote server.

Flags:
  -h, --help       show help (also: mcp-proxy <command> --help)
  -V, --version    print the version

Run "mcp-proxy serve --help" for the serve flags.
`;

/** Parses the whole command line. Throws UsageError for anything malformed. */
export function parseCli(
  args: readonly string[],
  env: (name: string) => string | undefined,
): Command {
  const [first, ...rest] = args;
  if (first === undefined || first === "-h" || first === "--help" || first === "help") {
    return { mode: "help", text: MAIN_USAGE };
  }
  if (first === "-V" || first === "--version" || first === "version") return { mode: "version" };
  if (first === "serve") return parseServe(rest, env);
  if (first === "connect") {
    throw new UsageError("connect is not implemented yet; use serve (see mcp-proxy --help)");
  }
  if (first.startsWith("-")) {
    throw new UsageError(`unknown flag "${first}" before the command; run mcp-proxy --help`);
  }
  throw new UsageError(`unknown command "${first}"; the commands are serve and connect`);
}

function parseServe(args: readonly string[], env: (name: string) => string | undefined): Command {
  const { flags, rest } = splitAtCommand(args, SERVE_FLAGS, "serve");
  const values = parseFlags(flags, SERVE_FLAGS, "serve");
  if (values.help) return { mode: "help", text: usageFor("serve", SERVE_USAGE, SERVE_FLAGS) };
  const [command, ...commandArgs] = rest;
  if (command !== undefined && /^https?:\/\//i.test(command)) {
    throw new UsageError(
      `serve <url> is not implemented yet (got "${command}"); serve a local command after --`,
    );
  }
  const apiKey = str(values["api-key"]) ?? env(ENV_API_KEY);
  if (apiKey !== undefined && apiKey.trim() === "") {
    throw new UsageError(`--api-key must not be empty (${ENV_API_KEY} counts too)`);
  }
  const cwd = str(values.cwd);
  if (cwd !== undefined && cwd === "") throw new UsageError("--cwd must not be empty");
  return {
    mode: "serve",
    logLevel: logLevel(values),
    host: host(str(values.host) ?? "127.0.0.1"),
    port: port(str(values.port) ?? "8080"),
    command: command === undefined ? undefined : { command, args: commandArgs },
    cwd,
    env: envPairs(list(values.env)),
    sessionTimeoutMs: duration("--session-timeout", str(values["session-timeout"]) ?? "5m"),
    stateless: values.stateless === true,
    apiKey,
    allowedHosts: list(values["allowed-host"]).map((h) => nonEmpty("--allowed-host", h)),
    corsOrigins: list(values["cors-origin"]).map(origin),
    maxBody: size("--max-body", str(values["max-body"]) ?? "4mb"),
    shutdownGraceMs: duration("--shutdown-grace", str(values["shutdown-grace"]) ?? "3s"),
  };
}

const SERVE_USAGE = `Usage: mcp-proxy serve [flags] [-- <command> [args...]]

Spawns <command> as a stdio MCP server (one process per session, never through a shell) and
serves it over Streamable HTTP at /mcp and legacy SSE at /sse + /message, with /health.
Without a command, serves the built-in demo server. Flags go before the command; everything
from the command on (or after --) is passed to it untouched.

Example:
  mcp-proxy serve --port 8080 -- npx -y @modelcontextprotocol/server-everything`;

/** Help text: the usage paragraph and an aligned flag list. */
export function usageFor(_name: string, usage: string, flags: readonly FlagSpec[]): string {
  const rows = flags.map((flag) => {
    const names = (flag.short ? `-${flag.short}, ` : "    ") + `--${flag.name}` +
      (flag.arg ? ` ${flag.arg}` : "");
    return [names, flag.help] as const;
  });
  const width = Math.max(...rows.map(([names]) => names.length)) + 2;
  const lines = rows.map(([names, help]) => `  ${names.padEnd(width)}${help}`);
  return `${usage}\n\nFlags:\n${lines.join("\n")}\n`;
}

/**
 * Splits argv into our flags and the command: the command starts at "--" or at the first
 * token that is neither a flag nor a flag's value. Unknown flags are refused here, by name.
 * Flag values given as separate tokens are joined ("--port 0" -> "--port=0"), so a value that
 * starts with "-" is still a value.
 */
function splitAtCommand(args: readonly string[], specs: readonly FlagSpec[], mode: string) {
  const flags: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const token = args[i]!;
    if (token === "--") return { flags, rest: args.slice(i + 1) };
    if (!token.startsWith("-") || token === "-") return { flags, rest: args.slice(i) };
    const spec = findSpec(token, specs);
    if (!spec) {
      throw new UsageError(`unknown flag "${token}" for ${mode}; run mcp-proxy ${mode} --help`);
    }
    if (spec.type === "string" && !token.includes("=")) {
      if (i + 1 >= args.length) throw new UsageError(`${token} needs a value (${spec.arg})`);
      flags.push(`--${spec.name}=${args[++i]}`);
    } else {
      flags.push(token);
    }
  }
  return { flags, rest: [] as string[] };
}

function findSpec(token: string, specs: readonly FlagSpec[]): FlagSpec | undefined {
  if (token.startsWith("--")) {
    const name = token.slice(2).split("=")[0];
    return specs.find((spec) => spec.name === name);
  }
  return token.length === 2 ? specs.find((spec) => spec.short === token[1]) : undefined;
}

type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

function parseFlags(
  flags: readonly string[],
  specs: readonly FlagSpec[],
  mode: string,
): FlagValues {
  const options = Object.fromEntries(specs.map((spec) => [spec.name, {
    type: spec.type,
    ...(spec.short ? { short: spec.short } : {}),
    ...(spec.multiple ? { multiple: true } : {}),
  }]));
  try {
    return parseArgs({ args: [...flags], options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const flag = /'(-[^' ]+)/.exec(message)?.[1] ?? "a flag";
    if (/does not take an argument/.test(message)) {
      throw new UsageError(`${flag} is a switch and takes no value; run mcp-proxy ${mode} --help`);
    }
    throw new UsageError(`${message}; run mcp-proxy ${mode} --help`);
  }
}

function str(value: FlagValues[string]): string | undefined {
  if (Array.isArray(value)) return str(value[value.length - 1]);
  return typeof value === "string" ? value : undefined;
}

function list(value: FlagValues[string]): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).filter((v): v is string => typeof v === "string");
}

function logLevel(values: FlagValues): LogLevel | "silent" {
  if (values.quiet === true || values.silent === true) return "silent";
  if (values.debug === true) return "debug";
  const level = str(values["log-level"]) ?? "info";
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(", ")} (got "${level}")`);
  }
  return level as LogLevel;
}

function nonEmpty(flag: string, value: string): string {
  if (value.trim() === "") throw new UsageError(`${flag} must not be empty`);
  return value.trim();
}

function host(value: string): string {
  const trimmed = nonEmpty("--host", value);
  return trimmed.startsWith("[") && trimmed.endsWith("]") ? trimmed.slice(1, -1) : trimmed;
}

export function port(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) {
    throw new UsageError(`--port must be 0-65535 (got "${value}")`);
  }
  return n;
}

function envPairs(pairs: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--env must be KEY=VALUE (got "${pair}")`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

function origin(value: string): string {
  if (value === "*") return value;
  let parsed: URL | undefined;
  try {
    parsed = new URL(value);
  } catch {
    parsed = undefined;
  }
  if (
    !parsed || parsed.origin === "null" || parsed.origin !== value.replace(/\/$/, "").toLowerCase()
  ) {
    throw new UsageError(
      `--cors-origin must be an origin like https://app.example.com or * (got "${value}")`,
    );
  }
  return parsed.origin;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "500ms", "30s", "5m", "1h"; a bare number is seconds. */
export function duration(flag: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!match) {
    throw new UsageError(`${flag} must be a duration like 30s, 5m or 500ms (got "${value}")`);
  }
  return Math.round(Number(match[1]) * DURATION_UNITS[match[2] ?? "s"]!);
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1048576,
  mb: 1048576,
  mib: 1048576,
  g: 1073741824,
  gb: 1073741824,
  gib: 1073741824,
};

/** "4mb", "512kb", "1048576"; units are binary (1kb = 1024 bytes). */
export function size(flag: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = SIZE_UNITS[match?.[2]?.toLowerCase() ?? "x"];
  const bytes = match && unit !== undefined ? Math.floor(Number(match[1]) * unit) : 0;
  if (bytes < 1) {
    throw new UsageError(`${flag} must be a size like 4mb, 512kb or 65536 (got "${value}")`);
  }
  return bytes;
}
