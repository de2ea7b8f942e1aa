// The tokens for one remote server: loaded from the store and sent, refreshed before expiry and on
// 401 (one refresh at a time, across processes too), replaced by a new authorization when the
// refresh token is refused, and stepped up on 403 insufficient_scope. Transient failures are
// retried; they never log the user out.

import * as oauth from "oauth4webapi";
import { formatError, ProxyError } from "../errors.ts";
import { addSecret, log } from "../log.ts";
import type { FetchLike } from "../sdk.ts";
import type { BearerChallenge } from "./challenge.ts";
import { clientIdentity, type StaticClientInfo } from "./client.ts";
import { discover, type Discovery } from "./discovery.ts";
import { authorizationCodeFlow, describe } from "./flow.ts";
import {
  type ClientCredentials,
  clientCredentialsGrant,
  type CrossAppAccess,
  crossAppAccessGrant,
  refreshGrant,
} from "./grants.ts";
import { ServerStore, type StoredTokens } from "./store.ts";

export interface OAuthOptions {
  serverUrl: URL;
  /** Shown in messages (the URL without its query). */
  label: string;
  configDir: string;
  /** Plain fetch (no --header values, no tokens) for discovery and token requests. */
  fetch: FetchLike;
  allowHttp: boolean;
  staticClientInfo?: StaticClientInfo;
  staticClientMetadata?: Record<string, unknown>;
  clientMetadataUrl?: string;
  /** undefined: the server's; a string: --resource; null: --no-resource. */
  resource?: string | null;
  callbackHost: string;
  callbackPort?: number;
  authTimeoutMs: number;
  browser?: string;
  clientCredentials?: ClientCredentials;
  crossAppAccess?: CrossAppAccess;
  /** The server's store, when it is open already (not opened a second time). */
  store?: ServerStore;
}

/** Refresh this long before the access token expires (less for short-lived tokens). */
const EARLY_MS = 30_000;
/** Step-ups for the same set of scopes, at most (a server that always wants more must stop). */
const STEP_UP_LIMIT = 2;

export class OAuthProvider {
  #options: OAuthOptions;
  #store?: Promise<ServerStore>;
  #tokens?: StoredTokens;
  #loaded?: Promise<void>;
  #discovery?: Discovery;
  /** One acquisition (refresh or authorization) at a time; the others wait for its result. */
  #busy?: Promise<void>;
  #stepUps = new Map<string, number>();
  /** Scopes granted so far, kept across a new authorization so a step-up is not lost. */
  #granted = new Set<string>();
  #browserFlows = 0;

  constructor(options: OAuthOptions) {
    this.#options = options;
    if (options.store) this.#store = Promise.resolve(options.store);
  }

  /** True while a person is expected to act in the browser (request clocks should wait). */
  get waitingForUser(): boolean {
    return this.#browserFlows > 0;
  }

  /** The access token to send (refreshed first when about to expire), if we have one. */
  async token(): Promise<string | undefined> {
    await (this.#loaded ??= this.#load());
    const tokens = this.#tokens;
    if (tokens?.refresh_token && expiring(tokens)) {
      await this.#acquire(tokens.access_token, undefined, "expiring").catch((error) =>
        log.warn(`could not refresh the access token early: ${formatError(error)}`)
      );
    }
    return this.#tokens?.access_token;
  }

  /** After a 401: a new token (refreshed, or a new authorization). False when none came. */
  async unauthorized(challenge: BearerChallenge | undefined, sent?: string): Promise<boolean> {
    await this.#acquire(sent, challenge, "unauthorized");
    return this.#tokens !== undefined && this.#tokens.access_token !== sent;
  }

  /**
   * After a 403 insufficient_scope: authorize again for the union of what we hold and what the
   * server asks, at most twice, and never when we already hold every scope it names.
   */
  async insufficientScope(challenge: BearerChallenge, sent?: string): Promise<boolean> {
    const held = new Set([...this.#granted, ...scopesOf(this.#tokens?.scope)]);
    const wanted = scopesOf(challenge.scope);
    if (wanted.length > 0 && wanted.every((scope) => held.has(scope))) return false;
    const key = [...wanted].sort().join(" ");
    const attempts = this.#stepUps.get(key) ?? 0;
    if (attempts >= STEP_UP_LIMIT) {
      log.warn(`the server keeps asking for more scope (${challenge.scope}); giving up`);
      return false;
    }
    this.#stepUps.set(key, attempts + 1);
    const scope = [...new Set([...held, ...wanted])].join(" ") || undefined;
    await this.#acquire(sent, { ...challenge, scope }, "step-up");
    return this.#tokens !== undefined && this.#tokens.access_token !== sent;
  }

  /** Shares one acquisition between everyone who saw the same token fail. */
  async #acquire(
    sent: string | undefined,
    challenge: BearerChallenge | undefined,
    why: "expiring" | "unauthorized" | "step-up",
  ): Promise<void> {
    while (this.#busy) await this.#busy.catch(() => {});
    if (this.#tokens && this.#tokens.access_token !== sent && why !== "step-up") return;
    const work = this.#run(sent, challenge, why);
    this.#busy = work;
    try {
      await work;
    } finally {
      if (this.#busy === work) this.#busy = undefined;
    }
  }

  async #run(
    sent: string | undefined,
    challenge: BearerChallenge | undefined,
    why: "expiring" | "unauthorized" | "step-up",
  ): Promise<void> {
    const store = await this.#storeOf();
    const wait = this.#options.authTimeoutMs + 15_000;
    await store.withLock(async () => {
      // Another instance may have done the work while we waited for the lock.
      const stored = await store.readTokens();
      if (stored && stored.access_token !== sent && why !== "step-up" && !expiring(stored)) {
        this.#adopt(stored);
        return;
      }
      const discovery = await this.#discover(challenge, why);
      const resource = this.#resourceFor(discovery);
      if (this.#options.crossAppAccess || this.#options.clientCredentials) {
        return await this.#save(store, await this.#headless(discovery, challenge, resource));
      }
      const refreshToken = (stored ?? this.#tokens)?.refresh_token;
      if (refreshToken && why !== "step-up" && challenge?.error !== "insufficient_scope") {
        const refreshed = await this.#refresh(discovery, store, refreshToken, resource);
        if (refreshed) return await this.#save(store, refreshed, refreshToken);
      }
      if (why === "expiring") return;
      // What the server asks for, plus what we were granted before (a step-up is not undone).
      const asked = scopesOf(challenge?.scope ?? discovery.scopesSupported?.join(" "));
      const scope = [...new Set([...asked, ...this.#granted])].join(" ");
      this.#browserFlows++;
      try {
        const tokens = await authorizationCodeFlow(
          { as: discovery.as, scope: scope || undefined, resource },
          store,
          { ...this.#options, stablePort: stablePort(store.dir) },
        );
        await this.#save(store, tokens);
      } finally {
        this.#browserFlows--;
      }
    }, wait);
  }

  async #discover(challenge: BearerChallenge | undefined, why: string): Promise<Discovery> {
    if (this.#discovery && why === "expiring") return this.#discovery;
    try {
      this.#discovery = await discover(this.#options.serverUrl, challenge, this.#options);
    } catch (error) {
      log.error(formatError(error));
      throw error;
    }
    return this.#discovery;
  }

  #resourceFor(discovery: Discovery): string | undefined {
    const { resource } = this.#options;
    if (resource === null) return undefined;
    return resource ?? discovery.resource;
  }

  async #headless(
    discovery: Discovery,
    challenge: BearerChallenge | undefined,
    resource: string | undefined,
  ): Promise<oauth.TokenEndpointResponse> {
    const credentials = this.#options.clientCredentials!;
    const scope = challenge?.scope ?? discovery.scopesSupported?.join(" ");
    const as = credentials.tokenUrl
      ? { ...discovery.as, token_endpoint: credentials.tokenUrl }
      : discovery.as;
    const request = { resource, scope: scope || undefined };
    if (this.#options.crossAppAccess) {
      return await crossAppAccessGrant(
        as,
        credentials,
        this.#options.crossAppAccess,
        request,
        this.#options,
      );
    }
    return await clientCredentialsGrant(as, credentials, request, this.#options);
  }

  /**
   * Refreshes; undefined when the refresh token was refused (a new authorization is needed).
   * Transient failures (temporarily_unavailable, 5xx, network) are retried with backoff, then
   * reported, keeping the tokens.
   */
  async #refresh(
    discovery: Discovery,
    store: ServerStore,
    refreshToken: string,
    resource: string | undefined,
  ): Promise<oauth.TokenEndpointResponse | undefined> {
    const identity = await clientIdentity(discovery.as, undefined, store, this.#options).catch(
      (error) => {
        log.debug(`cannot refresh: ${formatError(error)}`);
        return undefined;
      },
    );
    if (!identity) return undefined;
    for (let attempt = 0;; attempt++) {
      try {
        return await refreshGrant(discovery.as, identity, refreshToken, resource, this.#options);
      } catch (error) {
        if (!transient(error) || attempt >= 3) {
          if (error instanceof oauth.ResponseBodyError && error.error === "invalid_grant") {
            log.info("the refresh token was refused; authorizing again");
            await store.clearTokens();
            this.#tokens = undefined;
            return undefined;
          }
          const refusedClient = error instanceof oauth.ResponseBodyError &&
            (error.error === "invalid_client" || error.error === "unauthorized_client");
          if (refusedClient && !this.#options.staticClientInfo) {
            // The server forgot our registration: register again through a new authorization.
            log.info("the authorization server no longer knows this client; registering again");
            await store.clearClient();
            await store.clearTokens();
            this.#tokens = undefined;
            return undefined;
          }
          throw new ProxyError(
            "upstream",
            `refreshing the access token failed: ${describe(error)}`,
            {
              cause: error,
            },
          );
        }
        const delay = 500 * 2 ** attempt;
        log.info(
          `refreshing the access token failed (${describe(error)}); retrying in ${delay} ms`,
        );
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  async #save(
    store: ServerStore,
    response: oauth.TokenEndpointResponse,
    previousRefresh?: string,
  ): Promise<void> {
    const now = Date.now();
    const tokens: StoredTokens = {
      access_token: response.access_token,
      token_type: response.token_type,
      // A server that does not rotate refresh tokens keeps the old one valid.
      refresh_token: response.refresh_token ?? previousRefresh,
      scope: response.scope ?? this.#tokens?.scope,
      issued_at: now,
      expires_at: typeof response.expires_in === "number"
        ? now + response.expires_in * 1000
        : undefined,
    };
    this.#adopt(tokens);
    await store.writeTokens(tokens);
    log.debug("stored new tokens");
  }

  #adopt(tokens: StoredTokens): void {
    for (const scope of scopesOf(tokens.scope)) this.#granted.add(scope);
    addSecret(tokens.access_token);
    if (tokens.refresh_token) addSecret(tokens.refresh_token);
    this.#tokens = tokens;
  }

  async #load(): Promise<void> {
    try {
      const tokens = await (await this.#storeOf()).readTokens();
      if (tokens) this.#adopt(tokens);
    } catch (error) {
      log.debug(`no stored tokens: ${formatError(error)}`);
    }
  }

  #storeOf(): Promise<ServerStore> {
    const { configDir, serverUrl, resource } = this.#options;
    this.#store ??= ServerStore.open(configDir, serverUrl, resource ?? undefined);
    this.#store.catch(() => (this.#store = undefined));
    return this.#store;
  }
}

/** Within the refresh margin: 30 s, or half the token's lifetime when that is shorter. */
function expiring(tokens: StoredTokens): boolean {
  if (tokens.expires_at === undefined) return false;
  const lifetime = tokens.issued_at === undefined ? Infinity : tokens.expires_at - tokens.issued_at;
  return tokens.expires_at - Date.now() < Math.min(EARLY_MS, lifetime / 2);
}

function scopesOf(scope: string | undefined): string[] {
  return (scope ?? "").split(" ").filter(Boolean);
}

/** Network trouble, 5xx, or the server saying "try again". */
function transient(error: unknown): boolean {
  if (error instanceof oauth.ResponseBodyError) {
    return error.error === "temporarily_unavailable" || error.status >= 500;
  }
  if (error instanceof oauth.OperationProcessingError) {
    const status = (error.cause as Response | undefined)?.status;
    return typeof status === "number" && status >= 500;
  }
  return error instanceof ProxyError && error.code === "upstream";
}

/**
 * A callback port in 28000-31999 derived from the server's folder, so it is the same each run. The
 * range lies below every system's ephemeral ports (Linux 32768-60999, Windows and macOS from 49152),
 * so an outgoing connection never holds it and the redirect URI does not change under load.
 */
function stablePort(dir: string): number {
  let hash = 0;
  for (const char of dir) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return 28000 + (hash % 4000);
}
