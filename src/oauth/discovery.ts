// Finding the authorization server for an MCP server: RFC 9728 protected-resource metadata (the
// challenge's URL, else path-aware, else root), then RFC 8414 / OpenID Connect metadata in the
// MCP 2025-11-25 order; 2025-03-26 servers without metadata get the default endpoints.

import * as oauth from "oauth4webapi";
import { ProxyError } from "../errors.ts";
import { log } from "../log.ts";
import type { FetchLike } from "../sdk.ts";
import type { BearerChallenge } from "./challenge.ts";

export interface Discovery {
  as: oauth.AuthorizationServer;
  /** The protected resource identifier (RFC 8707), when the server publishes one. */
  resource?: string;
  /** The resource's scopes_supported, when published. */
  scopesSupported?: string[];
  /** No resource metadata: a 2025-03-26 server whose origin is its authorization server. */
  legacy: boolean;
}

export interface DiscoveryOptions {
  fetch: FetchLike;
  /** Whether plain-HTTP authorization servers are acceptable (loopback or --allow-http). */
  allowHttp: boolean;
}

/** Discovers the authorization server guarding `serverUrl`. */
export async function discover(
  serverUrl: URL,
  challenge: BearerChallenge | undefined,
  options: DiscoveryOptions,
): Promise<Discovery> {
  const prm = await resourceMetadata(serverUrl, challenge, options);
  if (!prm) return { as: await legacyMetadata(serverUrl, options), legacy: true };
  const issuer = new URL(prm.authorization_servers[0]!);
  const scopes = Array.isArray(prm.scopes_supported)
    ? prm.scopes_supported.filter((s): s is string => typeof s === "string")
    : undefined;
  return {
    as: await serverMetadata(issuer, options),
    resource: prm.resource,
    scopesSupported: scopes,
    legacy: false,
  };
}

interface ResourceMetadata {
  resource: string;
  authorization_servers: string[];
  scopes_supported?: unknown[];
}

async function resourceMetadata(
  serverUrl: URL,
  challenge: BearerChallenge | undefined,
  options: DiscoveryOptions,
): Promise<ResourceMetadata | undefined> {
  const path = serverUrl.pathname.replace(/\/$/, "");
  const candidates = challenge?.resourceMetadata
    ? [new URL(challenge.resourceMetadata, serverUrl)]
    : [
      ...(path ? [new URL(`/.well-known/oauth-protected-resource${path}`, serverUrl)] : []),
      new URL("/.well-known/oauth-protected-resource", serverUrl),
    ];
  for (const url of candidates) {
    const json = await getJson(url, options);
    if (!json) continue;
    if (typeof json.resource !== "string" || !isList(json.authorization_servers)) {
      throw new ProxyError("upstream", `${url.href} is not protected resource metadata`);
    }
    if (!resourceMatches(serverUrl, json.resource)) {
      throw new ProxyError(
        "upstream",
        `the protected resource metadata at ${url.href} is for "${json.resource}", not ` +
          `${serverUrl.origin}${serverUrl.pathname}; refusing to authorize`,
      );
    }
    return json as unknown as ResourceMetadata;
  }
  return undefined;
}

/** The metadata's resource must be the server URL or a same-origin path prefix of it. */
function resourceMatches(serverUrl: URL, resource: string): boolean {
  let claimed: URL;
  try {
    claimed = new URL(resource);
  } catch {
    return false;
  }
  if (claimed.origin !== serverUrl.origin) return false;
  const prefix = claimed.pathname.replace(/\/$/, "");
  return serverUrl.pathname === prefix || serverUrl.pathname.startsWith(`${prefix}/`) ||
    prefix === "";
}

/** RFC 8414 path-inserted, OpenID Connect path-inserted, OpenID Connect path-appended. */
async function serverMetadata(
  issuer: URL,
  options: DiscoveryOptions,
): Promise<oauth.AuthorizationServer> {
  const path = issuer.pathname.replace(/\/$/, "");
  const candidates = [
    new URL(`/.well-known/oauth-authorization-server${path}`, issuer),
    new URL(`/.well-known/openid-configuration${path}`, issuer),
    ...(path ? [new URL(`${path}/.well-known/openid-configuration`, issuer)] : []),
  ];
  for (const url of candidates) {
    const response = await options.fetch(url, { headers: { accept: "application/json" } });
    if (response.status !== 200) {
      await response.body?.cancel();
      continue;
    }
    try {
      return await oauth.processDiscoveryResponse(issuer, response);
    } catch (error) {
      throw new ProxyError(
        "upstream",
        `the authorization server metadata at ${url.href} is not valid for issuer ${issuer.href}`,
        { cause: error },
      );
    }
  }
  throw new ProxyError(
    "upstream",
    `no authorization server metadata for ${issuer.href} (tried ${
      candidates.map((u) => u.href).join(", ")
    })`,
  );
}

/**
 * A 2025-03-26 server: metadata at its origin's RFC 8414 URL (its issuer may differ), else the
 * default endpoints /authorize, /token and /register at the origin.
 */
async function legacyMetadata(
  serverUrl: URL,
  options: DiscoveryOptions,
): Promise<oauth.AuthorizationServer> {
  const url = new URL("/.well-known/oauth-authorization-server", serverUrl);
  const json = await getJson(url, options);
  if (
    json && typeof json.authorization_endpoint === "string" &&
    typeof json.token_endpoint === "string"
  ) {
    log.debug(`no protected resource metadata; using ${url.href}`);
    return { ...json, issuer: typeof json.issuer === "string" ? json.issuer : serverUrl.origin };
  }
  log.debug("no protected resource or authorization server metadata; using the default endpoints");
  return {
    issuer: serverUrl.origin,
    authorization_endpoint: new URL("/authorize", serverUrl).href,
    token_endpoint: new URL("/token", serverUrl).href,
    registration_endpoint: new URL("/register", serverUrl).href,
    code_challenge_methods_supported: ["S256"],
  };
}

/** GETs a JSON document; undefined when the server has none there (4xx or not JSON). */
async function getJson(
  url: URL,
  options: DiscoveryOptions,
): Promise<Record<string, unknown> | undefined> {
  if (url.protocol === "http:" && !options.allowHttp) {
    throw new ProxyError("upstream", `refusing to fetch ${url.href} over plain HTTP`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    // A challenge or metadata naming file:, data: or anything else: never fetched.
    throw new ProxyError("upstream", `refusing to fetch OAuth metadata from ${url.href}`);
  }
  const response = await options.fetch(url, { headers: { accept: "application/json" } });
  if (!response.ok) {
    await response.body?.cancel();
    return undefined;
  }
  try {
    const json = await response.json();
    return typeof json === "object" && json !== null && !Array.isArray(json) ? json : undefined;
  } catch {
    return undefined;
  }
}

function isList(value: unknown): value is string[] {
  return Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === "string");
}
