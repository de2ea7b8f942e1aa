// Flags for a remote upstream (connect <url> and serve <url>): the URL rules (https unless
// --allow-http or a loopback host), --header, timeouts, the strategy, OAuth; and tool filtering.

import { ProxyError, UsageError } from "./errors.ts";
import type { FilterRules } from "./filter.ts";
import { parseHeaders } from "./headers.ts";
import {
  duration,
  type EnvAccess,
  type FlagSpec,
  type FlagValues,
  list,
  port,
  str,
} from "./cli_parse.ts";
import { defaultConfigDir } from "./oauth/store.ts";
import { STRATEGIES, type Strategy } from "./upstream/strategy.ts";

export interface RemoteSpec {
  url: URL;
  strategy: Strategy;
  headers: Array<[string, string]>;
  /** Per request; 0 waits as long as the connection lives. */
  timeoutMs: number;
  connectTimeoutMs: number;
  enableProxy: boolean;
  /** Plain HTTP is acceptable (for the server and its authorization server). */
  allowHttp: boolean;
  /** undefined when an Authorization --header turns OAuth off. */
  oauth?: OAuthSpec;
}

/** OAuth settings as given; JSON and @file values are read when the mode starts. */
export interface OAuthSpec {
  configDir: string;
  /** --static-oauth-client-info: JSON or @file. */
  clientInfo?: string;
  /** --static-oauth-client-metadata: JSON or @file. */
  clientMetadata?: string;
  clientMetadataUrl?: string;
  /** undefined: the server's; a string: --resource; null: --no-resource. */
  resource?: string | null;
  callbackHost: string;
  callbackPort?: number;
  authTimeoutMs: number;
  browser?: string;
  clientId?: string;
  clientSecret?: string;
  /** --client-private-key, the path after "@". */
  clientPrivateKey?: string;
  tokenUrl?: string;
  idpTokenUrl?: string;
  idpClientId?: string;
  idpIdToken?: string;
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
    help: "fail a request the server has not answered in this long, 0 never (default 60s; " +
      "for serve -- <command>, never)",
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

export const OAUTH_FLAGS: FlagSpec[] = [
  {
    name: "config-dir",
    type: "string",
    arg: "<dir>",
    help: "where OAuth tokens and registrations are kept (env MCP_PROXY_CONFIG_DIR)",
  },
  {
    name: "static-oauth-client-info",
    type: "string",
    arg: "<json or @file>",
    help: "use this registered client (client_id, client_secret) instead of registering",
  },
  {
    name: "static-oauth-client-metadata",
    type: "string",
    arg: "<json or @file>",
    help: "extra client metadata for dynamic registration",
  },
  {
    name: "client-metadata-url",
    type: "string",
    arg: "<url>",
    help: "our client ID metadata document, used when the server supports them",
  },
  {
    name: "resource",
    type: "string",
    arg: "<url>",
    help: "the RFC 8707 resource to ask tokens for (default: the server's)",
  },
  {
    name: "no-resource",
    type: "boolean",
    help: "send no resource parameter (servers that refuse it)",
  },
  {
    name: "callback-port",
    type: "string",
    arg: "<port>",
    help: "port of the OAuth callback (default: one derived from the server URL)",
  },
  {
    name: "auth-timeout",
    type: "string",
    arg: "<duration>",
    help: "how long to wait for the browser authorization (default 60s)",
  },
  {
    name: "client-id",
    type: "string",
    arg: "<id>",
    help: "headless: the client-credentials grant with this client (or SEP-990 with --idp-*)",
  },
  { name: "client-secret", type: "string", arg: "<secret>", help: "its secret, ${VAR} allowed" },
  {
    name: "client-private-key",
    type: "string",
    arg: "<@key.pem>",
    help: "or its PKCS#8 key, for private_key_jwt (ES256 or RS256)",
  },
  {
    name: "token-url",
    type: "string",
    arg: "<url>",
    help: "the token endpoint for --client-id (default: discovered)",
  },
  {
    name: "idp-token-url",
    type: "string",
    arg: "<url>",
    help: "SEP-990: the identity provider's token endpoint",
  },
  { name: "idp-client-id", type: "string", arg: "<id>", help: "SEP-990: our client at the IdP" },
  {
    name: "idp-id-token",
    type: "string",
    arg: "<jwt>",
    help: "SEP-990: the user's ID token from the IdP, ${VAR} allowed",
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
export function parseRemote(
  url: string,
  values: FlagValues,
  env: EnvAccess,
  callbackHost: string,
): RemoteSpec {
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
  const headers = parseHeaders(list(values.header), (name) => readVariable(env, name));
  const manualAuth = headers.some(([name]) => name.toLowerCase() === "authorization");
  return {
    url: parsed,
    strategy: strategy as Strategy,
    headers,
    timeoutMs: duration("--timeout", str(values.timeout) ?? "60s"),
    connectTimeoutMs: Math.max(
      duration("--connect-timeout", str(values["connect-timeout"]) ?? "10s"),
      1,
    ),
    enableProxy: values["enable-proxy"] === true,
    allowHttp: values["allow-http"] === true || LOOPBACK.has(parsed.hostname),
    oauth: manualAuth ? undefined : parseOAuth(values, env, callbackHost),
  };
}

/** The OAuth flags, checked for combinations that cannot work. */
export function parseOAuth(values: FlagValues, env: EnvAccess, callbackHost: string): OAuthSpec {
  const text = (name: string) => {
    const value = str(values[name]);
    if (value !== undefined && value.trim() === "") {
      throw new UsageError(`--${name} must not be empty`);
    }
    return value === undefined ? undefined : interpolate(`--${name}`, value, env);
  };
  const resource = text("resource");
  if (resource !== undefined && values["no-resource"]) {
    throw new UsageError("--resource and --no-resource contradict each other; keep one");
  }
  if (resource !== undefined) url("--resource", resource);
  const key = text("client-private-key");
  if (key !== undefined && !key.startsWith("@")) {
    throw new UsageError(
      `--client-private-key must name a file: @key.pem (got "${key.slice(0, 20)}")`,
    );
  }
  const spec: OAuthSpec = {
    configDir: text("config-dir") ?? defaultConfigDir((name) => env.get(name)),
    clientInfo: text("static-oauth-client-info"),
    clientMetadata: text("static-oauth-client-metadata"),
    clientMetadataUrl: text("client-metadata-url"),
    resource: values["no-resource"] ? null : resource,
    callbackHost,
    callbackPort: values["callback-port"] === undefined
      ? undefined
      : port(str(values["callback-port"])!, "--callback-port"),
    authTimeoutMs: duration("--auth-timeout", str(values["auth-timeout"]) ?? "60s"),
    browser: env.get("BROWSER"),
    clientId: text("client-id"),
    clientSecret: text("client-secret"),
    clientPrivateKey: key?.slice(1),
    tokenUrl: text("token-url"),
    idpTokenUrl: text("idp-token-url"),
    idpClientId: text("idp-client-id"),
    idpIdToken: text("idp-id-token"),
  };
  if (spec.clientMetadataUrl !== undefined) url("--client-metadata-url", spec.clientMetadataUrl);
  if (spec.tokenUrl !== undefined) url("--token-url", spec.tokenUrl);
  if ((spec.clientSecret || spec.clientPrivateKey) && !spec.clientId) {
    throw new UsageError("--client-secret and --client-private-key need --client-id");
  }
  if (spec.clientId && !spec.clientSecret && !spec.clientPrivateKey) {
    throw new UsageError("--client-id needs --client-secret or --client-private-key @key.pem");
  }
  const idp = [spec.idpTokenUrl, spec.idpClientId, spec.idpIdToken];
  if (idp.some((v) => v !== undefined) && idp.some((v) => v === undefined)) {
    throw new UsageError(
      "cross-app access needs all of --idp-token-url, --idp-client-id, --idp-id-token",
    );
  }
  if (spec.idpTokenUrl !== undefined) {
    url("--idp-token-url", spec.idpTokenUrl);
    if (!spec.clientId) {
      throw new UsageError("--idp-id-token needs --client-id and --client-secret");
    }
  }
  return spec;
}

function url(flag: string, value: string): void {
  try {
    new URL(value);
  } catch {
    throw new UsageError(`${flag} must be a URL (got "${value}")`);
  }
}

/** ${VAR} in a flag value, taken from the environment. */
function interpolate(flag: string, value: string, env: EnvAccess): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
    const found = readVariable(env, name);
    if (found === undefined) {
      throw new UsageError(
        `${flag} uses \${${name}}, but ${name} is not set; set it or change the flag`,
      );
    }
    return found;
  });
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

/** Names of remote flags present in `values` (they need a URL upstream or a config). */
export function remoteFlagsGiven(values: FlagValues): string[] {
  return [...REMOTE_FLAGS, ...OAUTH_FLAGS].filter((flag) => values[flag.name] !== undefined)
    .map((flag) => `--${flag.name}`);
}

function readVariable(env: EnvAccess, name: string): string | undefined {
  if (!env.readable(name)) {
    throw new ProxyError(
      "permission",
      `missing permission: \${${name}} is used; run again with --allow-env=${name}`,
    );
  }
  return env.get(name);
}
