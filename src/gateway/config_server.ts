// One entry of the gateway config's mcpServers, and the options objects (per server and the
// mcpProxy.options defaults): validated into a StdioServerConfig or a RemoteServerConfig.

import { UsageError } from "../errors.ts";
import { duration } from "../cli_parse.ts";
import { FIELD_VALUE, RESERVED_HEADERS } from "../headers.ts";
import type { Checker } from "./config_check.ts";
import type { ServerConfig, ServerOptions, ToolFilterConfig, TransportChoice } from "./config.ts";
import type { JsonPath } from "./jsonc.ts";

export type PartialOptions = Partial<ServerOptions>;
type Declared = { key: string; value: string; type: "stdio" | "sse" | "streamable-http" };

export const DEFAULT_OPTION_KEYS = ["toolFilter", "authTokens", "timeout", "required"];
const OPTION_KEYS = [...DEFAULT_OPTION_KEYS, "disabled"];
const STDIO_KEYS = ["command", "args", "env", "cwd"];
const REMOTE_KEYS = ["url", "headers", "transport"];
const SERVER_KEYS = [...STDIO_KEYS, ...REMOTE_KEYS, "type", "transportType", "options"];
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);
const TYPES = new Map<string, Declared["type"]>([
  ["stdio", "stdio"],
  ["sse", "sse"],
  ["http", "streamable-http"],
  ["streamable-http", "streamable-http"],
  ["streamableHttp", "streamable-http"],
]);
const REMOTE_TYPES = '"sse", "http" or "streamable-http"';
const TRANSPORTS = '"streamable-http", "sse" or "auto"';

/** mcpServers.<name>; undefined when it has problems (they are in `c`). */
export function serverConfig(
  c: Checker,
  name: string,
  value: unknown,
  context: { defaults: PartialOptions; allowHttp: boolean },
): ServerConfig | undefined {
  const path = ["mcpServers", name];
  const at = (key: string): JsonPath => [...path, key];
  const o = c.object(path, value, SERVER_KEYS, 'an object with "command" or "url"');
  if (!o) return undefined;
  const stdio = o.command !== undefined;
  const command = stdio ? c.text(at("command"), o.command, "a command") : undefined;
  const args = o.args === undefined
    ? []
    : c.array(at("args"), o.args, "an array of strings", (p, v) => c.string(p, v));
  const env = o.env === undefined
    ? {}
    : c.strings(at("env"), o.env, "an object of strings", (p, key) => envName(c, p, key));
  const cwd = o.cwd === undefined ? undefined : c.text(at("cwd"), o.cwd, "a directory");
  const url = o.url === undefined ? undefined : serverUrl(c, at("url"), o.url, context.allowHttp);
  const headers = o.headers === undefined
    ? {}
    : c.strings(at("headers"), o.headers, "an object of strings", (p, key, text) =>
      header(c, p, key, text));
  const transport = o.transport === undefined ? undefined : transportChoice(c, at("transport"), o);
  const declared = declaredType(c, path, o);
  const options = mergeOptions(
    context.defaults,
    parseOptions(c, at("options"), o.options, OPTION_KEYS),
  );

  if (stdio === (o.url !== undefined)) {
    const got = stdio ? "both" : "neither";
    c.at(path, `expected exactly one of "command" (stdio) or "url" (remote), got ${got}`);
    return undefined;
  }
  for (const key of stdio ? ["headers", "transport"] : ["args", "env", "cwd"]) {
    if (o[key] === undefined) continue;
    c.at(
      at(key),
      stdio
        ? 'only for a remote server (with "url"), but this one has "command"'
        : 'only for a stdio server (with "command"), but this one has "url"',
    );
  }
  if (declared && stdio !== (declared.type === "stdio")) {
    const what = stdio
      ? '"stdio" for a server with "command"'
      : `${REMOTE_TYPES} for a server with "url"`;
    c.expected(at(declared.key), what, declared.value);
  }
  const implied = declared?.type === "stdio" ? undefined : declared?.type;
  if (!stdio && implied && transport !== undefined && transport !== implied) {
    c.expected(at("transport"), `"${implied}" to agree with "${declared?.key}"`, transport);
  }
  if (stdio) {
    if (command === undefined || !args || !env) return undefined;
    return {
      kind: "stdio",
      name,
      command,
      args,
      env,
      ...(cwd === undefined ? {} : { cwd }),
      options,
    };
  }
  if (url === undefined || !headers) return undefined;
  return { kind: "remote", name, url, headers, transport: implied ?? transport ?? "auto", options };
}

/** `type` and `transportType`, as clients write them; when both are there they must agree. */
function declaredType(
  c: Checker,
  path: JsonPath,
  o: Record<string, unknown>,
): Declared | undefined {
  let found: Declared | undefined;
  for (const key of ["type", "transportType"]) {
    if (o[key] === undefined) continue;
    const value = c.string([...path, key], o[key]);
    if (value === undefined) continue;
    const type = TYPES.get(value);
    if (type === undefined) {
      c.expected([...path, key], `"stdio", ${REMOTE_TYPES}`, value);
    } else if (found && found.type !== type) {
      c.expected(
        [...path, key],
        `the same as "${found.key}" (${JSON.stringify(found.value)})`,
        value,
      );
    } else {
      found ??= { key, value, type };
    }
  }
  return found;
}

function transportChoice(
  c: Checker,
  path: JsonPath,
  o: Record<string, unknown>,
): TransportChoice | undefined {
  const choice = c.string(path, o.transport, TRANSPORTS);
  if (choice === "streamable-http" || choice === "sse" || choice === "auto") return choice;
  if (choice !== undefined) c.expected(path, TRANSPORTS, choice);
  return undefined;
}

function serverUrl(
  c: Checker,
  path: JsonPath,
  value: unknown,
  allowHttp: boolean,
): string | undefined {
  const text = c.text(path, value, "an http(s) URL");
  if (text === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(text.trim());
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== "https:" && url.protocol !== "http:")) {
    c.expected(path, "an http(s) URL like https://host/mcp", text);
  } else if (url.username || url.password) {
    c.at(path, 'expected a URL without a user or password (send credentials in "headers")');
  } else if (url.protocol === "http:" && !allowHttp && !LOOPBACK.has(url.hostname)) {
    c.expected(path, "https:// (plain http:// only to localhost, unless --allow-http)", text);
  } else {
    return url.href;
  }
  return undefined;
}

function envName(c: Checker, path: JsonPath, name: string): boolean {
  if (name !== "" && !/[=\0]/.test(name)) return true;
  c.at(path, 'expected an environment variable name, without "="');
  return false;
}

function header(c: Checker, path: JsonPath, name: string, value: string | undefined): boolean {
  if (!HEADER_NAME.test(name)) {
    c.at(path, "expected a header name of letters, digits and !#$%&'*+.^_`|~-");
    return false;
  }
  if (RESERVED_HEADERS.has(name.toLowerCase())) {
    c.at(path, `the ${name} header is set by mcp-proxy itself; remove it`);
    return false;
  }
  if (value !== undefined && /[\r\n\0]/.test(value)) {
    c.at(path, "expected a value without line breaks");
    return false;
  }
  if (value !== undefined && !FIELD_VALUE.test(value)) {
    c.at(
      path,
      "expected a value without control characters, in Latin-1 (a header cannot carry it)",
    );
    return false;
  }
  return true;
}

/** An options object; `keys` are the ones allowed there (no "disabled" in the defaults). */
export function parseOptions(
  c: Checker,
  path: JsonPath,
  value: unknown,
  keys: readonly string[] = OPTION_KEYS,
): PartialOptions {
  if (value === undefined) return {};
  const o = c.object(path, value, keys);
  if (!o) return {};
  const at = (key: string): JsonPath => [...path, key];
  const out: PartialOptions = {};
  if (o.toolFilter !== undefined) {
    const filter = toolFilter(c, at("toolFilter"), o.toolFilter);
    if (filter) out.toolFilter = filter;
  }
  if (o.authTokens !== undefined) {
    const tokens = c.array(at("authTokens"), o.authTokens, "an array of tokens", (p, v) => {
      const token = c.text(p, v, "a token without spaces");
      if (token === undefined || !/\s/.test(token)) return token;
      c.expected(p, "a token without spaces", token);
      return undefined;
    });
    if (tokens) out.authTokens = tokens;
  }
  if (o.timeout !== undefined) {
    const ms = timeout(c, at("timeout"), o.timeout);
    if (ms !== undefined) out.timeoutMs = ms;
  }
  for (const key of ["required", "disabled"] as const) {
    if (o[key] === undefined) continue;
    const flag = c.boolean(at(key), o[key]);
    if (flag !== undefined) out[key] = flag;
  }
  if (out.required && out.disabled) {
    c.at(path, '"required" and "disabled" are both true: /health would answer 503 for good');
  }
  return out;
}

/** A server's options over the defaults, key by key; a disabled server is never required. */
export function mergeOptions(defaults: PartialOptions, own: PartialOptions): ServerOptions {
  const disabled = own.disabled ?? false;
  const out: ServerOptions = {
    authTokens: [...(own.authTokens ?? defaults.authTokens ?? [])],
    required: !disabled && (own.required ?? defaults.required ?? false),
    disabled,
  };
  const filter = own.toolFilter ?? defaults.toolFilter;
  if (filter) out.toolFilter = { mode: filter.mode, list: [...filter.list] };
  const timeoutMs = own.timeoutMs ?? defaults.timeoutMs;
  if (timeoutMs !== undefined) out.timeoutMs = timeoutMs;
  return out;
}

function toolFilter(c: Checker, path: JsonPath, value: unknown): ToolFilterConfig | undefined {
  const o = c.object(path, value, ["mode", "list"], '{"mode": "allow" or "block", "list": [...]}');
  if (!o) return undefined;
  const modePath = [...path, "mode"];
  const listPath = [...path, "list"];
  let mode: string | undefined;
  if (o.mode === undefined) c.missing(modePath, '"allow" or "block"');
  else mode = c.string(modePath, o.mode, '"allow" or "block"');
  if (mode !== undefined && mode !== "allow" && mode !== "block") {
    c.expected(modePath, '"allow" or "block"', mode);
    mode = undefined;
  }
  const what = 'an array of name globs like ["read_*"]';
  const list = o.list === undefined
    ? (c.missing(listPath, what), undefined)
    : c.array(listPath, o.list, what, (p, v) => c.text(p, v, "a non-empty glob"));
  return mode && list ? { mode: mode as "allow" | "block", list } : undefined;
}

const TIMEOUT = 'a duration like "30s", "5m" or "500ms", or a number of seconds';

function timeout(c: Checker, path: JsonPath, value: unknown): number | undefined {
  if (typeof value === "number") {
    if (Number.isFinite(value) && value >= 0) return Math.round(value * 1000);
    c.expected(path, TIMEOUT, value);
    return undefined;
  }
  const text = c.string(path, value, TIMEOUT);
  if (text === undefined) return undefined;
  try {
    return duration("timeout", text);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    c.expected(path, TIMEOUT, text);
    return undefined;
  }
}
