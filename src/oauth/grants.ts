// The token requests that need no browser: refresh, client credentials (client_secret_basic,
// client_secret_post or private_key_jwt), and enterprise cross-app access (SEP-990: token exchange
// of an identity provider's ID token for an ID-JAG, then the JWT-bearer grant).

import * as oauth from "oauth4webapi";
import { ProxyError } from "../errors.ts";
import { addSecret } from "../log.ts";
import type { FetchLike } from "../sdk.ts";
import { type ClientIdentity, secretAuth } from "./client.ts";
import { describe } from "./flow.ts";

export interface GrantOptions {
  fetch: FetchLike;
  allowHttp: boolean;
}

export interface ClientCredentials {
  clientId: string;
  clientSecret?: string;
  /** PKCS#8 PEM (EC P-256 -> ES256, RSA -> RS256). */
  privateKeyPem?: string;
  tokenUrl?: string;
}

export interface CrossAppAccess {
  idpTokenUrl: string;
  idpClientId: string;
  idToken: string;
}

function requestOptions(options: GrantOptions, resource?: string, scope?: string) {
  const additionalParameters: Record<string, string> = {};
  if (resource) additionalParameters.resource = resource;
  if (scope) additionalParameters.scope = scope;
  return {
    additionalParameters,
    [oauth.customFetch]: options.fetch,
    [oauth.allowInsecureRequests]: options.allowHttp,
  };
}

/** Refresh; throws oauth4webapi's ResponseBodyError for `invalid_grant` and friends. */
export async function refreshGrant(
  as: oauth.AuthorizationServer,
  identity: ClientIdentity,
  refreshToken: string,
  resource: string | undefined,
  options: GrantOptions,
): Promise<oauth.TokenEndpointResponse> {
  const response = await oauth.refreshTokenGrantRequest(
    as,
    identity.client,
    identity.auth,
    refreshToken,
    requestOptions(options, resource),
  );
  return await oauth.processRefreshTokenResponse(as, identity.client, response);
}

/** The client-credentials grant (no user, no browser). */
export async function clientCredentialsGrant(
  as: oauth.AuthorizationServer,
  credentials: ClientCredentials,
  request: { resource?: string; scope?: string },
  options: GrantOptions,
): Promise<oauth.TokenEndpointResponse> {
  const params: Record<string, string> = {};
  if (request.scope) params.scope = request.scope;
  if (request.resource) params.resource = request.resource;
  const attempt = async (identity: ClientIdentity) => {
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      identity.client,
      identity.auth,
      params,
      requestOptions(options),
    );
    return await oauth.processClientCredentialsResponse(as, identity.client, response);
  };
  const identity = await credentialsIdentity(as, credentials);
  try {
    return await attempt(identity);
  } catch (error) {
    // A server that advertises both secret methods may still insist on the one registered.
    const refused = error instanceof oauth.ResponseBodyError && error.error === "invalid_client";
    if (refused && identity.client.token_endpoint_auth_method === "client_secret_basic") {
      const post = {
        client: { ...identity.client, token_endpoint_auth_method: "client_secret_post" },
        auth: secretAuth("client_secret_post", credentials.clientSecret),
      };
      try {
        return await attempt(post);
      } catch {
        // Report the first refusal below.
      }
    }
    throw new ProxyError("upstream", `the client credentials grant failed: ${describe(error)}`, {
      cause: error,
    });
  }
}

/** Exchanges the IdP's ID token for an ID-JAG, then the ID-JAG for an access token here. */
export async function crossAppAccessGrant(
  as: oauth.AuthorizationServer,
  credentials: ClientCredentials,
  xaa: CrossAppAccess,
  request: { resource?: string; scope?: string },
  options: GrantOptions,
): Promise<oauth.TokenEndpointResponse> {
  addSecret(xaa.idToken);
  const idp: oauth.AuthorizationServer = {
    issuer: new URL(xaa.idpTokenUrl).origin,
    token_endpoint: xaa.idpTokenUrl,
  };
  const idpClient: oauth.Client = { client_id: xaa.idpClientId };
  const exchange: Record<string, string> = {
    subject_token: xaa.idToken,
    subject_token_type: "urn:ietf:params:oauth:token-type:id_token",
    requested_token_type: "urn:ietf:params:oauth:token-type:id-jag",
    audience: as.issuer,
  };
  if (request.resource) exchange.resource = request.resource;
  if (request.scope) exchange.scope = request.scope;
  let assertion: string;
  try {
    const response = await oauth.genericTokenEndpointRequest(
      idp,
      idpClient,
      oauth.None(),
      "urn:ietf:params:oauth:grant-type:token-exchange",
      exchange,
      requestOptions(options),
    );
    const result = await oauth.processGenericTokenEndpointResponse(idp, idpClient, response, {
      // An ID-JAG is not an access token for anyone: its token_type is "N_A".
      recognizedTokenTypes: { n_a: () => {} },
    });
    assertion = result.access_token;
    addSecret(assertion);
  } catch (error) {
    throw new ProxyError(
      "upstream",
      `the token exchange at ${xaa.idpTokenUrl} failed: ${describe(error)}`,
      {
        cause: error,
      },
    );
  }
  const identity = await credentialsIdentity(as, credentials);
  const grant: Record<string, string> = { assertion };
  if (request.resource) grant.resource = request.resource;
  if (request.scope) grant.scope = request.scope;
  try {
    const response = await oauth.genericTokenEndpointRequest(
      as,
      identity.client,
      identity.auth,
      "urn:ietf:params:oauth:grant-type:jwt-bearer",
      grant,
      requestOptions(options),
    );
    return await oauth.processGenericTokenEndpointResponse(as, identity.client, response);
  } catch (error) {
    throw new ProxyError("upstream", `the JWT-bearer grant failed: ${describe(error)}`, {
      cause: error,
    });
  }
}

async function credentialsIdentity(
  as: oauth.AuthorizationServer,
  credentials: ClientCredentials,
): Promise<ClientIdentity> {
  if (credentials.privateKeyPem) {
    const key = await importPrivateKey(credentials.privateKeyPem);
    return {
      client: { client_id: credentials.clientId, token_endpoint_auth_method: "private_key_jwt" },
      auth: oauth.PrivateKeyJwt(key),
    };
  }
  const supported = as.token_endpoint_auth_methods_supported;
  const method = supported && !supported.includes("client_secret_basic") &&
      supported.includes("client_secret_post")
    ? "client_secret_post"
    : "client_secret_basic";
  return {
    client: { client_id: credentials.clientId, token_endpoint_auth_method: method },
    auth: secretAuth(method, credentials.clientSecret),
  };
}

/** A PKCS#8 PEM private key: EC P-256 for ES256, else RSA for RS256. */
async function importPrivateKey(pem: string): Promise<CryptoKey> {
  const body = pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, "").replace(/\s+/g, "");
  let der: Uint8Array<ArrayBuffer>;
  try {
    der = Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
  } catch (error) {
    throw new ProxyError("usage", "--client-private-key is not a PEM file", { cause: error });
  }
  for (
    const algorithm of [
      { name: "ECDSA", namedCurve: "P-256" },
      { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
    ]
  ) {
    try {
      return await crypto.subtle.importKey("pkcs8", der, algorithm, false, ["sign"]);
    } catch {
      // Try the next kind.
    }
  }
  throw new ProxyError(
    "usage",
    "--client-private-key must be a PKCS#8 PEM key, EC P-256 (ES256) or RSA (RS256)",
  );
}
