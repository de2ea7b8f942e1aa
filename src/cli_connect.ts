// `mcp-proxy connect <url>`: its flags, help text and options. A local MCP client starts us as
// its stdio server; we forward everything to the remote server at <url>.

import {
  type CommonOptions,
  type EnvAccess,
  type FlagSpec,
  host,
  LOG_FLAGS,
  logLevel,
  parseFlags,
  splitAtCommand,
  str,
  usageFor,
} from "./cli_parse.ts";
import {
  FILTER_FLAGS,
  OAUTH_FLAGS,
  parseRemote,
  parseToolFilter,
  REMOTE_FLAGS,
  type RemoteSpec,
} from "./cli_remote.ts";
import { UsageError } from "./errors.ts";
import type { FilterRules } from "./filter.ts";

export interface ConnectOptions extends CommonOptions {
  mode: "connect";
  remote: RemoteSpec;
  tools: FilterRules;
}

export const CONNECT_FLAGS: FlagSpec[] = [
  ...REMOTE_FLAGS,
  ...OAUTH_FLAGS,
  {
    name: "host",
    type: "string",
    arg: "<addr>",
    help: "address the OAuth callback listens on (default 127.0.0.1)",
  },
  ...FILTER_FLAGS,
  ...LOG_FLAGS,
];

const CONNECT_USAGE = `Usage: mcp-proxy connect <url> [flags]

Started by a local MCP client (Claude Desktop, Cursor, Claude Code, an agent in CI) as its
stdio server: reads JSON-RPC from stdin, forwards it to the MCP server at <url> over Streamable
HTTP or SSE, and writes the answers to stdout. Logs go to stderr only.

Example (Claude Desktop, claude_desktop_config.json):
  { "mcpServers": { "remote": { "command": "mcp-proxy",
      "args": ["connect", "https://mcp.example.com/mcp", "--header", "Authorization: Bearer \${TOKEN}"] } } }`;

export function parseConnect(args: readonly string[], env: EnvAccess): ConnectOptions | {
  mode: "help";
  text: string;
} {
  // The URL may come first or after the flags; everything else must be a flag.
  const urlAt = args.findIndex((arg, i) => !arg.startsWith("-") && !takesValue(args[i - 1]));
  const url = urlAt === -1 ? undefined : args[urlAt];
  const rest = urlAt === -1 ? args : [...args.slice(0, urlAt), ...args.slice(urlAt + 1)];
  const { flags, rest: extra } = splitAtCommand(rest, CONNECT_FLAGS, "connect");
  const values = parseFlags(flags, "connect");
  if (values.help) return { mode: "help", text: usageFor(CONNECT_USAGE, CONNECT_FLAGS) };
  if (extra.length > 0) {
    throw new UsageError(
      `connect takes one URL (got also "${extra[0]}"); run mcp-proxy connect --help`,
    );
  }
  if (url === undefined) {
    throw new UsageError("connect needs the server's URL: mcp-proxy connect https://host/mcp");
  }
  return {
    mode: "connect",
    logLevel: logLevel(values),
    remote: parseRemote(url, values, env, host(str(values.host) ?? "127.0.0.1")),
    tools: parseToolFilter(values),
  };
}

/** Whether `token` is a string flag written without "=", so the next token is its value. */
function takesValue(token: string | undefined): boolean {
  if (!token?.startsWith("--") || token.includes("=")) return false;
  return CONNECT_FLAGS.some((flag) => flag.type === "string" && `--${flag.name}` === token);
}
