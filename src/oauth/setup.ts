// Turns the OAuth flags into a provider: reads the JSON and @file values (a bad one is a usage
// error naming the flag) and wraps the upstream fetch so tokens travel with every request. The
// provider itself (and oauth4webapi) loads only once a server needs it.

import type { OAuthSpec } from "../cli_remote.ts";
import { formatError, UsageError } from "../errors.ts";
import { addSecret, log } from "../log.ts";
import type { FetchLike } from "../sdk.ts";
import { authFetch, type TokenSource } from "./auth_fetch.ts";
import type { BearerChallenge } from "./challenge.ts";
import type { StaticClientInfo } from "./client.ts";
import type { OAuthOptions, OAuthProvider } from "./provider.ts";
import { ServerStore } from "./store.ts";

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
  const provider = new LazyProvider({
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

/**
 * The OAuthProvider, loaded with oauth4webapi only when it is needed: there are stored tokens to
 * send, or the server answered 401 or 403. A server that never asks for OAuth never loads that
 * code (serve <url> then starts 7 to 10 ms sooner).
 */
class LazyProvider implements TokenSource {
  #options: OAuthOptions;
  #provider?: OAuthProvider;
  #loading?: Promise<OAuthProvider>;
  #stored?: Promise<boolean>;
  /** Opened to look for tokens: handed to the provider. */
  #store?: ServerStore;

  constructor(options: OAuthOptions) {
    this.#options = options;
  }

  get waitingForUser(): boolean {
    return this.#provider?.waitingForUser ?? false;
  }

  async token(): Promise<string | undefined> {
    if (this.#provider) return this.#provider.token();
    if (!await (this.#stored ??= this.#hasStoredTokens())) return undefined;
    return (await this.#load()).token();
  }

  async unauthorized(challenge: BearerChallenge | undefined, sent?: string): Promise<boolean> {
    return (await this.#load()).unauthorized(challenge, sent);
  }

  async insufficientScope(challenge: BearerChallenge, sent?: string): Promise<boolean> {
    return (await this.#load()).insufficientScope(challenge, sent);
  }

  #load(): Promise<OAuthProvider> {
    return this.#loading ??= import("./provider.ts").then(({ OAuthProvider }) =>
      this.#provider = new OAuthProvider({ ...this.#options, store: this.#store })
    );
  }

  async #hasStoredTokens(): Promise<boolean> {
    const { configDir, serverUrl, resource } = this.#options;
    try {
      this.#store = await ServerStore.open(configDir, serverUrl, resource ?? undefined);
      return await this.#store.readTokens() !== undefined;
    } catch (error) {
      log.debug(`no stored tokens: ${formatError(error)}`);
      return false;
    }
  }
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
