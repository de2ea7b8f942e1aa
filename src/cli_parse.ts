// The parsing every subcommand shares: flag tables, splitting argv at the command, reading the flags
// with clear usage errors, generated help text, and the validators for ports, durations and sizes.

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

/** The environment as the CLI may see it: values only where --allow-env lets us read them. */
export interface EnvAccess {
  /** The value, or undefined when unset or not readable. */
  get(name: string): string | undefined;
  /** Whether we may read `name` at all (without a prompt). */
  readable(name: string): boolean;
}

export interface CommonOptions {
  logLevel: LogLevel | "silent";
}

export const LOG_FLAGS: FlagSpec[] = [
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

/** Help text: the usage paragraph and an aligned flag list. */
export function usageFor(usage: string, flags: readonly FlagSpec[]): string {
  const rows = flags.map((flag) => {
    const names = (flag.short ? `-${flag.short}, ` : "    ") + `--${flag.name}` +
      (flag.arg ? ` ${flag.arg}` : "");
    return [names, flag.help] as const;
  });
  const width = Math.max(...rows.map(([names]) => names.length)) + 2;
  const lines = rows.map(([names, help]) => `  ${names.padEnd(width)}${help}`);
  return `${usage}\n\nFlags:\n${lines.join("\n")}\n`;
}

/** A flag as given: its spec, the name it was written with, and the value written with it. */
export interface FlagToken {
  spec: FlagSpec;
  /** "--port", "-p": for messages. */
  flag: string;
  /** The value after "=" or in the next token; undefined for a switch given none. */
  value?: string;
}

/**
 * Splits argv into our flags and the command: the command starts at "--" or at the first
 * token that is neither a flag nor a flag's value. Unknown flags are refused here, by name.
 * A string flag's value may be its next token ("--port 0"), so a value that starts with "-" is
 * still a value.
 */
export function splitAtCommand(
  args: readonly string[],
  specs: readonly FlagSpec[],
  mode: string,
): { flags: FlagToken[]; rest: string[] } {
  const flags: FlagToken[] = [];
  for (let i = 0; i < args.length; i++) {
    const token = args[i]!;
    if (token === "--") return { flags, rest: [...args.slice(i + 1)] };
    if (!token.startsWith("-") || token === "-") return { flags, rest: [...args.slice(i)] };
    const spec = findSpec(token, specs);
    if (!spec) {
      throw new UsageError(`unknown flag "${token}" for ${mode}; run mcp-proxy ${mode} --help`);
    }
    const at = token.indexOf("=");
    const flag = at === -1 ? token : token.slice(0, at);
    if (at !== -1) {
      flags.push({ spec, flag, value: token.slice(at + 1) });
    } else if (spec.type === "string") {
      if (i + 1 >= args.length) throw new UsageError(`${token} needs a value (${spec.arg})`);
      flags.push({ spec, flag, value: args[++i]! });
    } else {
      flags.push({ spec, flag });
    }
  }
  return { flags, rest: [] };
}

function findSpec(token: string, specs: readonly FlagSpec[]): FlagSpec | undefined {
  if (token.startsWith("--")) {
    const name = token.slice(2).split("=")[0];
    return specs.find((spec) => spec.name === name);
  }
  return token.length === 2 ? specs.find((spec) => spec.short === token[1]) : undefined;
}

export type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/**
 * The values of the flags splitAtCommand found, by flag name: a string flag's last value, every
 * value of a `multiple` one, true for a switch (refused when given a value). Our own loop, not
 * node:util's parseArgs: importing any node: module makes Deno set up its Node layer, which
 * costs every run about 5 MB of RSS and 5 to 10 ms of start-up.
 */
export function parseFlags(flags: readonly FlagToken[], mode: string): FlagValues {
  const values: FlagValues = {};
  for (const { spec, flag, value: given } of flags) {
    if (spec.type === "boolean" && given !== undefined) {
      throw new UsageError(`${flag} is a switch and takes no value; run mcp-proxy ${mode} --help`);
    }
    const value = given ?? true;
    const before = values[spec.name];
    values[spec.name] = !spec.multiple
      ? value
      : Array.isArray(before)
      ? [...before, value]
      : [value];
  }
  return values;
}

export function str(value: FlagValues[string]): string | undefined {
  if (Array.isArray(value)) return str(value[value.length - 1]);
  return typeof value === "string" ? value : undefined;
}

export function list(value: FlagValues[string]): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).filter((v): v is string => typeof v === "string");
}

export function logLevel(values: FlagValues): LogLevel | "silent" {
  if (values.quiet === true || values.silent === true) return "silent";
  if (values.debug === true) return "debug";
  const level = str(values["log-level"]) ?? "info";
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(", ")} (got "${level}")`);
  }
  return level as LogLevel;
}

export function nonEmpty(flag: string, value: string): string {
  if (value.trim() === "") throw new UsageError(`${flag} must not be empty`);
  return value.trim();
}

export function host(value: string): string {
  const trimmed = nonEmpty("--host", value);
  return trimmed.startsWith("[") && trimmed.endsWith("]") ? trimmed.slice(1, -1) : trimmed;
}

export function port(value: string, flag = "--port"): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) {
    throw new UsageError(`${flag} must be 0-65535 (got "${value}")`);
  }
  return n;
}

export function envPairs(pairs: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--env must be KEY=VALUE (got "${pair}")`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

export function origin(value: string): string {
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
