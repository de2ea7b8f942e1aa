// The authorization code flow with PKCE S256 and state: a loopback callback server started
// before the browser opens (on a port stable per server, so redirect_uri does not drift), the
// callback checked (state, iss, error), and the code exchanged with the RFC 8707 resource.

import * as oauth from "oauth4webapi";
import { formatError, ProxyError } from "../errors.ts";
import { addSecret, log } from "../log.ts";
import type { FetchLike } from "../sdk.ts";
import { openBrowser } from "./browser.ts";
import { clientIdentity, type IdentityOptions } from "./client.ts";
import type { ServerStore } from "./store.ts";

export interface FlowOptions extends IdentityOptions {
  fetch: FetchLike;
  allowHttp: boolean;
  callbackHost: string;
  /** Given: exactly this port. Unset: a port derived from the server, else any free one. */
  callbackPort?: number;
  stablePort: number;
  authTimeoutMs: number;
  browser?: string;
  /** What to say the authorization is for (the server URL, shown without a query). */
  label: string;
}

export interface FlowRequest {
  as: oauth.AuthorizationServer;
  scope?: string;
  resource?: string;
}

/** Runs one authorization: returns the token response. */
export async function authorizationCodeFlow(
  request: FlowRequest,
  store: ServerStore,
  options: FlowOptions,
): Promise<oauth.TokenEndpointResponse> {
  const { as, scope, resource } = request;
  if (!as.authorization_endpoint) {
    throw new ProxyError("upstream", `${as.issuer} has no authorization endpoint`);
  }
  await using callback = listen(options);
  const identity = await clientIdentity(as, callback.redirectUri, store, options);
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  addSecret(verifier);
  const url = new URL(as.authorization_endpoint);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("client_id", identity.client.client_id);
  url.searchParams.set("redirect_uri", callback.redirectUri);
  url.searchParams.set("code_challenge", await oauth.calculatePKCECodeChallenge(verifier));
  url.searchParams.set("code_challenge_method", "S256");
  url.searchParams.set("state", state);
  if (scope) url.searchParams.set("scope", scope);
  if (resource) url.searchParams.set("resource", resource);
  log.info(`authorize mcp-proxy for ${options.label} in your browser: ${url.href}`);
  openBrowser(url.href, options.browser);
  const seconds = Math.round(options.authTimeoutMs / 1000);
  const landed = await callback.wait(options.authTimeoutMs).catch((error) => {
    throw new ProxyError(
      "timeout",
      `no authorization within ${seconds}s (--auth-timeout); open the URL printed above and allow access`,
      { cause: error },
    );
  });
  let params: URLSearchParams;
  try {
    params = oauth.validateAuthResponse(as, identity.client, landed, state);
  } catch (error) {
    throw new ProxyError("upstream", `the authorization was refused: ${describe(error)}`, {
      cause: error,
    });
  }
  const code = params.get("code");
  if (code) addSecret(code);
  try {
    const response = await oauth.authorizationCodeGrantRequest(
      as,
      identity.client,
      identity.auth,
      params,
      callback.redirectUri,
      verifier,
      {
        additionalParameters: resource ? { resource } : undefined,
        [oauth.customFetch]: options.fetch,
        [oauth.allowInsecureRequests]: options.allowHttp,
      },
    );
    return await oauth.processAuthorizationCodeResponse(as, identity.client, response);
  } catch (error) {
    throw new ProxyError("upstream", `the token request failed: ${describe(error)}`, {
      cause: error,
    });
  }
}

/** A one-shot loopback server for the redirect. */
interface Callback extends AsyncDisposable {
  redirectUri: string;
  /** Resolves with the callback URL, or rejects after `ms`. */
  wait(ms: number): Promise<URL>;
}

function listen(options: FlowOptions): Callback {
  let land!: (url: URL) => void;
  const landed = new Promise<URL>((resolve) => (land = resolve));
  const handler = (req: Request): Response => {
    const url = new URL(req.url);
    if (
      url.pathname !== "/callback" ||
      (!url.searchParams.has("code") && !url.searchParams.has("error"))
    ) {
      return new Response("Not found", { status: 404 });
    }
    land(url);
    const failed = url.searchParams.has("error");
    return new Response(
      `<!doctype html><title>mcp-proxy</title><p>${
        failed ? "Authorization failed." : "Authorized."
      } You can close this window and return to your MCP client.</p>`,
      { status: failed ? 400 : 200, headers: { "content-type": "text/html; charset=utf-8" } },
    );
  };
  const hostname = options.callbackHost;
  let server: Deno.HttpServer<Deno.NetAddr>;
  const serve = (port: number) => Deno.serve({ hostname, port, onListen() {} }, handler);
  try {
    server = serve(options.callbackPort ?? options.stablePort);
  } catch (error) {
    if (options.callbackPort !== undefined || !(error instanceof Deno.errors.AddrInUse)) {
      const where = `${hostname}:${options.callbackPort ?? options.stablePort}`;
      throw new ProxyError("listen", `cannot listen for the OAuth callback on ${where}`, {
        cause: error,
      });
    }
    log.warn(
      `the OAuth callback port ${options.stablePort} is in use; using a free one (the redirect ` +
        "URI changes, so the client may be registered again)",
    );
    server = serve(0);
  }
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  const shownHost = host === "0.0.0.0" || host === "[::]" ? "127.0.0.1" : host;
  return {
    redirectUri: `http://${shownHost}:${server.addr.port}/callback`,
    wait: (ms) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("timed out")), ms);
      });
      return Promise.race([landed, timeout]).finally(() => clearTimeout(timer));
    },
    [Symbol.asyncDispose]: async () => {
      await server.shutdown().catch((error) => log.debug(`callback: ${formatError(error)}`));
    },
  };
}

/**
 * oauth4webapi errors carry the server's error and description, or the Response that did not
 * conform (a redirect, a 5xx): say those, never "[object Response]".
 */
export function describe(error: unknown): string {
  if (
    error instanceof oauth.AuthorizationResponseError || error instanceof oauth.ResponseBodyError
  ) {
    return error.error_description ? `${error.error}: ${error.error_description}` : error.error;
  }
  if (error instanceof oauth.OperationProcessingError && error.cause instanceof Response) {
    const { status, statusText, headers } = error.cause;
    const location = headers.get("location");
    const redirect = status >= 300 && status < 400 && location
      ? `; the redirect to ${location} was not followed`
      : "";
    return `the server answered ${status} ${statusText}${redirect}`.trim();
  }
  return formatError(error);
}
