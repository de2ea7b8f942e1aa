// Flags for a remote upstream (connect <url> and serve <url>) and for tool filtering (every mode):
// the URL rules (https unless --allow-http or a loopback host), --header, timeouts, the strategy.

import { ProxyError, UsageError } from "./errors.ts";
import type { FilterRules } from "./filter.ts";
import { parseHeaders } from "./headers.ts";
import {
  duration,
  type EnvAccess,
  type FlagSpec,
  type FlagValues,
  list,
  str,
} from "./cli_parse.ts";
import { STRATEGIES, type Strategy } from "./upstream/remote.ts";

export interface RemoteSpec {
  url: URL;
  strategy: Strategy;
  headers: Array<[string, string]>;
  /** Per request; 0 waits as long as the connection lives. */
  timeoutMs: number;
  connectTimeoutMs: number;
  enableProxy: boolean;
}

export const REMOTE_FLAGS: FlagSpec[] = [
  {
    name: "transport",
    type: "string",
    arg: "<strategy>",
    help: "http-first (default), sse-first, http-only or sse-only",
  },
  {
    name: "header",
    type: "string",
    multiple: true,
    arg: "<'Name: value'>",
    help: "send this header upstream, ${VAR} from the environment (repeatable)",
  },
  {
    name: "allow-http",
    type: "boolean",
    help: "allow a plain http:// URL (https is required, except for localhost)",
  },
  {
    name: "timeout",
    type: "string",
    arg: "<duration>",
    help: "fail a request the server has not answered in this long, 0 never (default 60s)",
  },
  {
    name: "connect-timeout",
    type: "string",
    arg: "<duration>",
    help: "how long connecting may take, e.g. the SSE endpoint event (default 10s)",
  },
  {
    name: "enable-proxy",
    type: "boolean",
    help: "send upstream requests through HTTPS_PROXY/HTTP_PROXY, honoring NO_PROXY",
  },
];

export const FILTER_FLAGS: FlagSpec[] = [
  {
    name: "allow-tool",
    type: "string",
    multiple: true,
    arg: "<pattern>",
    help: "show only tools matching this glob, * and ? (repeatable)",
  },
  {
    name: "ignore-tool",
    type: "string",
    multiple: true,
    arg: "<pattern>",
    help: "hide tools matching this glob, * and ? (repeatable)",
  },
];

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** The remote upstream described by `url` and the remote flags. */
export function parseRemote(url: string, values: FlagValues, env: EnvAccess): RemoteSpec {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`the server URL is not a valid URL (got "${url}")`);
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
    throw new UsageError(`the server URL must be https:// (got "${url}")`);
  }
  if (parsed.protocol === "http:" && !values["allow-http"] && !LOOPBACK.has(parsed.hostname)) {
    throw new UsageError(
      `the server URL must be https:// (got "${url}"); pass --allow-http to use plain HTTP`,
    );
  }
  if (parsed.username || parsed.password) {
    throw new UsageError(
      `the server URL must not carry a user or password; use --header "Authorization: ..."`,
    );
  }
  const strategy = str(values.transport) ?? "http-first";
  if (!(STRATEGIES as readonly string[]).includes(strategy)) {
    throw new UsageError(`--transport must be one of ${STRATEGIES.join(", ")} (got "${strategy}")`);
  }
  return {
    url: parsed,
    strategy: strategy as Strategy,
    headers: parseHeaders(list(values.header), (name) => readVariable(env, name)),
    timeoutMs: duration("--timeout", str(values.timeout) ?? "60s"),
    connectTimeoutMs: Math.max(
      duration("--connect-timeout", str(values["connect-timeout"]) ?? "10s"),
      1,
    ),
    enableProxy: values["enable-proxy"] === true,
  };
}

/** The tool filter from --allow-tool and --ignore-tool. */
export function parseToolFilter(values: FlagValues): FilterRules {
  const check = (flag: string) => (pattern: string) => {
    if (pattern === "") throw new UsageError(`--${flag} must not be empty`);
    return pattern;
  };
  return {
    allow: list(values["allow-tool"]).map(check("allow-tool")),
    ignore: list(values["ignore-tool"]).map(check("ignore-tool")),
  };
}

/** Names of remote flags present in `values` (they need a URL upstream). */
export function remoteFlagsGiven(values: FlagValues): string[] {
  return REMOTE_FLAGS.filter((flag) => values[flag.name] !== undefined).map((flag) =>
    `--${flag.name}`
  );
}

function readVariable(env: EnvAccess, name: string): string | undefined {
  if (!env.readable(name)) {
    throw new ProxyError(
      "permission",
      `missing permission: --header uses \${${name}}; run again with --allow-env=${name}`,
    );
  }
  return env.get(name);
}
