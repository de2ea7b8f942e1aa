// argv -> typed options per mode: the dispatch to each subcommand's parser, and the top-level
// usage. Syntax (parseArgs), then validation (pure), then environment fallbacks, read here only.

import { type ConnectOptions, parseConnect } from "./cli_connect.ts";
import type { EnvAccess } from "./cli_parse.ts";
import { parseServe, type ServeOptions } from "./cli_serve.ts";
import { UsageError } from "./errors.ts";

export type { ConnectOptions, EnvAccess, ServeOptions };

export type Command =
  | { mode: "help"; text: string }
  | { mode: "version" }
  | ServeOptions
  | ConnectOptions;

export const MAIN_USAGE = `mcp-proxy: bridge Model Context Protocol transports.

Usage:
  mcp-proxy serve [flags] [-- <command> [args...]]
      Spawn a stdio MCP server per session and expose it over Streamable HTTP at /mcp
      and legacy SSE at /sse. Without a command, serves the built-in demo server.
  mcp-proxy serve [flags] <url>
      Expose a remote MCP server the same way, to many local clients.
  mcp-proxy connect <url> [flags]
      Be a local client's stdio server, forwarding to the remote MCP server at <url>.

Flags:
  -h, --help       show help (also: mcp-proxy <command> --help)
  -V, --version    print the version

Run "mcp-proxy serve --help" or "mcp-proxy connect --help" for their flags.
`;

/** Parses the whole command line. Throws UsageError for anything malformed. */
export function parseCli(args: readonly string[], env: EnvAccess): Command {
  const [first, ...rest] = args;
  if (first === undefined || first === "-h" || first === "--help" || first === "help") {
    return { mode: "help", text: MAIN_USAGE };
  }
  if (first === "-V" || first === "--version" || first === "version") return { mode: "version" };
  if (first === "serve") return parseServe(rest, env);
  if (first === "connect") return parseConnect(rest, env);
  if (first.startsWith("-")) {
    throw new UsageError(`unknown flag "${first}" before the command; run mcp-proxy --help`);
  }
  throw new UsageError(`unknown command "${first}"; the commands are serve and connect`);
}
