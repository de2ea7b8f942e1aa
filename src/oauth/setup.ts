// Turns the OAuth flags into a provider: reads the JSON and @file values (a bad one is a usage
// error naming the flag) and wraps the upstream fetch so tokens travel with every request.

import type { OAuthSpec } from "../cli_remote.ts";
import { formatError, UsageError } from "../errors.ts";
import { addSecret } from "../log.ts";
import type { FetchLike } from "../sdk.ts";
import { authFetch } from "./auth_fetch.ts";
import type { StaticClientInfo } from "./client.ts";
import { OAuthProvider } from "./provider.ts";

export interface OAuthWiring {
  spec: OAuthSpec;
  serverUrl: URL;
  label: string;
  allowHttp: boolean;
  /** The fetch for the MCP server (with --header values). */
  upstream: FetchLike;
  /** The plain fetch for discovery and token requests. */
  plain: FetchLike;
}

/**
 * The auth-aware fetch for one remote server (shared by all its sessions), and whether a person
 * is being waited for in the browser (so request timeouts can hold).
 */
export async function oauthFetch(
  wiring: OAuthWiring,
): Promise<{ fetch: FetchLike; waitingForUser: () => boolean }> {
  const { spec } = wiring;
  for (const secret of [spec.clientSecret, spec.idpIdToken]) if (secret) addSecret(secret);
  const clientInfo = await jsonOf("--static-oauth-client-info", spec.clientInfo);
  if (clientInfo !== undefined && typeof clientInfo.client_id !== "string") {
    throw new UsageError('--static-oauth-client-info needs a "client_id" string');
  }
  const provider = new OAuthProvider({
    serverUrl: wiring.serverUrl,
    label: wiring.label,
    configDir: spec.configDir,
    fetch: wiring.plain,
    allowHttp: wiring.allowHttp,
    staticClientInfo: clientInfo as StaticClientInfo | undefined,
    staticClientMetadata: await jsonOf("--static-oauth-client-metadata", spec.clientMetadata),
    clientMetadataUrl: spec.clientMetadataUrl,
    resource: spec.resource,
    callbackHost: spec.callbackHost,
    callbackPort: spec.callbackPort,
    authTimeoutMs: spec.authTimeoutMs,
    browser: spec.browser,
    clientCredentials: spec.clientId
      ? {
        clientId: spec.clientId,
        clientSecret: spec.clientSecret,
        privateKeyPem: spec.clientPrivateKey
          ? await readFile("--client-private-key", spec.clientPrivateKey)
          : undefined,
        tokenUrl: spec.tokenUrl,
      }
      : undefined,
    crossAppAccess: spec.idpTokenUrl && spec.idpClientId && spec.idpIdToken
      ? { idpTokenUrl: spec.idpTokenUrl, idpClientId: spec.idpClientId, idToken: spec.idpIdToken }
      : undefined,
  });
  return {
    fetch: authFetch(wiring.upstream, provider),
    waitingForUser: () => provider.waitingForUser,
  };
}

/** A flag's JSON object, inline or from @file. */
async function jsonOf(
  flag: string,
  value: string | undefined,
): Promise<Record<string, unknown> | undefined> {
  if (value === undefined) return undefined;
  const text = value.startsWith("@") ? await readFile(flag, value.slice(1)) : value;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${flag} is not valid JSON: ${formatError(error)}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`${flag} must be a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

async function readFile(flag: string, path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new UsageError(`${flag}: cannot read ${path}: ${formatError(error)}`);
  }
}
