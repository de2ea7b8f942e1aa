// Who we are to the authorization server, in order: --static-oauth-client-info, a stored
// registration, a client ID metadata document (--client-metadata-url, when supported), RFC 7591
// dynamic registration (merged with --static-oauth-client-metadata). And how we authenticate.

import * as oauth from "oauth4webapi";
import { ProxyError } from "../errors.ts";
import { addSecret, log } from "../log.ts";
import type { FetchLike } from "../sdk.ts";
import type { ServerStore, StoredClient } from "./store.ts";

export interface StaticClientInfo {
  client_id: string;
  client_secret?: string;
  token_endpoint_auth_method?: string;
}

export interface ClientIdentity {
  client: oauth.Client;
  auth: oauth.ClientAuth;
}

export interface IdentityOptions {
  fetch: FetchLike;
  allowHttp: boolean;
  staticClientInfo?: StaticClientInfo;
  staticClientMetadata?: Record<string, unknown>;
  clientMetadataUrl?: string;
}

/**
 * Finds (or registers) the client to use with `as` for `redirectUri`. Without a redirect URI
 * (a refresh) any stored registration will do, and none is made.
 */
export async function clientIdentity(
  as: oauth.AuthorizationServer,
  redirectUri: string | undefined,
  store: ServerStore,
  options: IdentityOptions,
): Promise<ClientIdentity> {
  if (options.staticClientInfo) return identityOf(options.staticClientInfo, as);
  const stored = await store.readClient();
  if (
    stored && stored.issuer === as.issuer &&
    (redirectUri === undefined || stored.redirect_uri === redirectUri)
  ) {
    return identityOf(stored, as);
  }
  if (options.clientMetadataUrl && as.client_id_metadata_document_supported === true) {
    log.debug(`using the client ID metadata document ${options.clientMetadataUrl}`);
    return identityOf(
      { client_id: options.clientMetadataUrl, token_endpoint_auth_method: "none" },
      as,
    );
  }
  if (redirectUri === undefined) {
    throw new ProxyError("upstream", `no client registration with ${as.issuer} is stored`);
  }
  if (!as.registration_endpoint) {
    throw new ProxyError(
      "upstream",
      `the authorization server ${as.issuer} offers no dynamic client registration; ` +
        'pass --static-oauth-client-info \'{"client_id":"..."}\'',
    );
  }
  const registered = await register(as, redirectUri, options);
  await store.writeClient(registered);
  return identityOf(registered, as);
}

async function register(
  as: oauth.AuthorizationServer,
  redirectUri: string,
  options: IdentityOptions,
): Promise<StoredClient> {
  const metadata: Partial<oauth.OmitSymbolProperties<oauth.Client>> = {
    client_name: "mcp-proxy",
    redirect_uris: [redirectUri],
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    token_endpoint_auth_method: preferredMethod(as),
    application_type: "native",
    ...options.staticClientMetadata,
  };
  log.debug(`registering a client with ${as.issuer}`);
  try {
    const response = await oauth.dynamicClientRegistrationRequest(as, metadata, {
      [oauth.customFetch]: options.fetch,
      [oauth.allowInsecureRequests]: options.allowHttp,
    });
    const client = await oauth.processDynamicClientRegistrationResponse(
      await withSecretExpiry(response),
    );
    const secret = typeof client.client_secret === "string" ? client.client_secret : undefined;
    if (secret) addSecret(secret);
    return {
      client_id: client.client_id,
      client_secret: secret,
      token_endpoint_auth_method: typeof client.token_endpoint_auth_method === "string"
        ? client.token_endpoint_auth_method
        : String(metadata.token_endpoint_auth_method),
      redirect_uri: redirectUri,
      issuer: as.issuer,
    };
  } catch (error) {
    throw new ProxyError("upstream", `dynamic client registration with ${as.issuer} failed`, {
      cause: error,
    });
  }
}

/**
 * RFC 7591 wants client_secret_expires_at next to a client_secret, and oauth4webapi insists;
 * servers that leave it out (the MCP conformance suite's among them) issue a secret that does not
 * expire, which the RFC spells 0. Everything else is still checked by oauth4webapi.
 */
async function withSecretExpiry(response: Response): Promise<Response> {
  if (response.status !== 201) return response;
  const json = await response.clone().json().catch(() => undefined);
  if (
    typeof json !== "object" || json === null || typeof json.client_secret !== "string" ||
    json.client_secret_expires_at !== undefined
  ) {
    return response;
  }
  await response.body?.cancel();
  return new Response(JSON.stringify({ ...json, client_secret_expires_at: 0 }), {
    status: response.status,
    headers: response.headers,
  });
}

/** A public client when the server allows one (PKCE protects it), else a secret. */
function preferredMethod(as: oauth.AuthorizationServer): string {
  const supported = as.token_endpoint_auth_methods_supported ?? ["client_secret_basic"];
  for (const method of ["none", "client_secret_basic", "client_secret_post"]) {
    if (supported.includes(method)) return method;
  }
  return supported[0] ?? "client_secret_basic";
}

function identityOf(info: StaticClientInfo, as: oauth.AuthorizationServer): ClientIdentity {
  const secret = info.client_secret;
  if (secret) addSecret(secret);
  const supported = as.token_endpoint_auth_methods_supported;
  const method = info.token_endpoint_auth_method ??
    (!secret ? "none" : supported && !supported.includes("client_secret_basic") &&
        supported.includes("client_secret_post")
      ? "client_secret_post"
      : "client_secret_basic");
  const client: oauth.Client = { client_id: info.client_id, token_endpoint_auth_method: method };
  return { client, auth: secretAuth(method, secret) };
}

/** The ClientAuth for a secret-based (or no) method. */
export function secretAuth(method: string, secret: string | undefined): oauth.ClientAuth {
  if (method === "none" || !secret) return oauth.None();
  if (method === "client_secret_post") return oauth.ClientSecretPost(secret);
  if (method === "client_secret_basic") return clientSecretBasic(secret);
  throw new ProxyError(
    "upstream",
    `token endpoint authentication "${method}" is not supported with a client secret`,
  );
}

/**
 * client_secret_basic with the RFC 6749 section 2.3.1 encoding applied only where a character
 * needs it. oauth4webapi's ClientSecretBasic also escapes unreserved characters ("-" as %2D),
 * which servers that do not decode the credentials (the MCP conformance suite's, among others)
 * refuse. This way ids and secrets of unreserved characters go out as they are (as the MCP SDK
 * client sends them), and any other character is still percent-encoded for servers that decode.
 */
function clientSecretBasic(secret: string): oauth.ClientAuth {
  return (_as, client, _body, headers) => {
    const credentials = `${encodeURIComponent(client.client_id)}:${encodeURIComponent(secret)}`;
    headers.set("authorization", `Basic ${btoa(credentials)}`);
  };
}
