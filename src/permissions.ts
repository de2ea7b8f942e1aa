// The Deno permissions each mode needs: the one source of truth for deno.json's tasks, the build
// and the tests (which run the CLI under exactly these flags); and the up-front checks that say
// which flag is missing before any work starts.

import { ProxyError } from "./errors.ts";

/** Environment variables the CLI reads as fallbacks for flags. */
export const ENV_VARS = ["MCP_PROXY_API_KEY"] as const;

/** Those of ENV_VARS that hold secrets: read once, then removed so children do not inherit them. */
export const SECRET_ENV_VARS: readonly string[] = ["MCP_PROXY_API_KEY"];

/**
 * serve: --allow-net to listen (and to reach a remote upstream), --allow-run to spawn the stdio
 * server; connect: --allow-net to reach the server. Both: --allow-env for the API-key fallback,
 * the ${VAR}s a --header names (any name, so not narrowed here; narrow it at `deno run`), and
 * clearing HTTP(S)_PROXY unless --enable-proxy; and for OAuth with a remote server,
 * --allow-read/--allow-write for the token store (the config directory) and --allow-run to open
 * the browser. Children inherit the environment without --allow-env, and a child's --cwd needs
 * no --allow-read.
 */
export const MODE_PERMISSIONS = {
  serve: ["--allow-net", "--allow-run", "--allow-env", "--allow-read", "--allow-write"],
  connect: ["--allow-net", "--allow-env", "--allow-read", "--allow-write", "--allow-run"],
} as const satisfies Record<string, readonly string[]>;

export type Mode = keyof typeof MODE_PERMISSIONS;

/**
 * V8 flags for every way we run. Young-generation semi-spaces of 2 MB instead of up to 16 MB: a
 * proxy makes short-lived garbage with every message, and by default the young generation grows
 * to about 48 MB committed, a third of the peak RSS (measured with `deno task bench --v8-flags`,
 * same run, 3 rounds: peak RSS 149 -> 105 MB for serve /mcp, 195 -> 120 MB for serve <url>,
 * 140 -> 111 MB for connect). And optimizing compilation on the main thread: the compiler
 * threads' memory stays with them once the hot code is compiled (same run, 3 rounds: RSS at 50
 * sessions 88 -> 79 MB for serve /mcp, 116 -> 102 MB for serve <url>; peak RSS 104 -> 97 and
 * 111 -> 103 MB for connect). Latency and throughput were unchanged within the noise for both.
 */
export const V8_FLAGS = [
  "--v8-flags=--max-semi-space-size=2,--no-concurrent-recompilation",
] as const;

/**
 * Flags for `deno run` / `deno compile` covering every mode (the permissions, then V8_FLAGS);
 * never prompts.
 */
export function runFlags(): string[] {
  const flags = new Set<string>(["--no-prompt"]);
  for (const list of Object.values(MODE_PERMISSIONS)) for (const flag of list) flags.add(flag);
  return [...flags, ...V8_FLAGS];
}

/** True when `descriptor` is granted (never prompts). */
export function granted(descriptor: Deno.PermissionDescriptor): boolean {
  return Deno.permissions.querySync(descriptor).state === "granted";
}

/** Throws a ProxyError naming the flag unless `descriptor` is granted (never prompts). */
export function requirePermission(descriptor: Deno.PermissionDescriptor, why: string): void {
  if (granted(descriptor)) return;
  const [flag, target] = describe(descriptor);
  const grant = target === undefined ? flag : `${flag}=${target}`;
  throw new ProxyError("permission", `missing permission: ${why}; run again with ${grant}`);
}

function describe(descriptor: Deno.PermissionDescriptor): [string, string | undefined] {
  switch (descriptor.name) {
    case "run":
      return ["--allow-run", descriptor.command?.toString()];
    case "net":
      return ["--allow-net", descriptor.host];
    case "env":
      return ["--allow-env", descriptor.variable];
    case "read":
      return ["--allow-read", descriptor.path?.toString()];
    case "write":
      return ["--allow-write", descriptor.path?.toString()];
    default:
      return [`--allow-${descriptor.name}`, undefined];
  }
}

/** An environment variable, where --allow-env lets us read it (never prompts); else undefined. */
export function readEnv(name: string): string | undefined {
  return granted({ name: "env", variable: name }) ? Deno.env.get(name) : undefined;
}

/** Permissions a mode only sometimes needs; the rest (net, env) every mode keeps. */
const OPTIONAL = ["read", "write", "run"] as const;
type Optional = typeof OPTIONAL[number];

/**
 * Revokes what this run will not use (a command-line decision made once, after parsing), so a
 * compromised dependency cannot use it either: `needs` is what the chosen mode and options use.
 * Returns what was revoked.
 */
export function revokeUnused(needs: ReadonlySet<Optional>): Optional[] {
  const revoked: Optional[] = [];
  for (const name of OPTIONAL) {
    if (needs.has(name) || Deno.permissions.querySync({ name }).state === "denied") continue;
    Deno.permissions.revokeSync({ name });
    revoked.push(name);
  }
  return revoked;
}
