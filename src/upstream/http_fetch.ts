// The fetch every remote request goes through: adds the --header values, turns network failures
// into one clear line (what host, what went wrong), and keeps the environment's proxies out
// unless --enable-proxy. OAuth wraps this fetch (src/oauth/); the SDK transports only call it.

import { permissionError, ProxyError } from "../errors.ts";
import { log } from "../log.ts";
import { granted } from "../permissions.ts";
import type { FetchLike } from "../sdk.ts";
import { ConnectError, http1Fetch, plainHttp } from "./http1.ts";

/** Variables Deno's fetch reads for proxies (on every request, so clearing them takes effect). */
export const PROXY_ENV_VARS = [
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "ALL_PROXY",
  "http_proxy",
  "https_proxy",
  "all_proxy",
] as const;

/** fetch, with failures to reach the host turned into one clear ProxyError line. */
export const netFetch: FetchLike = async (
  url: string | URL,
  init?: RequestInit,
): Promise<Response> => {
  try {
    const plain = plainHttp(url, init);
    if (plain && direct()) {
      try {
        return await http1Fetch(plain, init!);
      } catch (error) {
        // A name's first address refused us: fetch tries the others (say ::1, then 127.0.0.1).
        if (!(error instanceof ConnectError && error.byName)) throw error;
      }
    }
    return await fetch(url, init);
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw permissionError(error) ??
      new ProxyError("upstream", `cannot reach ${originOf(url)}: ${networkDetail(error)}`, {
        cause: error,
      });
  }
};

/** No proxy in the environment (so fetch would go direct too); asked once after each clearing. */
let directOnly: boolean | undefined;
function direct(): boolean {
  return directOnly ??= PROXY_ENV_VARS.every((name) =>
    granted({ name: "env", variable: name }) && Deno.env.get(name) === undefined
  );
}

/** A fetch that sends `headers` (repeats kept) with every request. */
export function upstreamFetch(
  headers: ReadonlyArray<readonly [string, string]>,
  base: FetchLike = netFetch,
): FetchLike {
  if (headers.length === 0) return base;
  const extra = new Headers();
  for (const [name, value] of headers) extra.append(name, value);
  return (url, init) => {
    const merged = new Headers(init?.headers);
    for (const [name, value] of extra) merged.set(name, value);
    return base(url, { ...init, headers: merged });
  };
}

/**
 * Deno's fetch honors HTTP(S)_PROXY on its own. Without --enable-proxy we remove them from our
 * environment, so upstream requests go direct. Needs --allow-env for those names to do so.
 */
export function disableEnvironmentProxies(): void {
  const blocked = PROXY_ENV_VARS.filter((name) => !granted({ name: "env", variable: name }));
  for (const name of PROXY_ENV_VARS) if (!blocked.includes(name)) Deno.env.delete(name);
  directOnly = undefined;
  if (blocked.length > 0) {
    log.warn(
      `cannot clear ${blocked.join(", ")} without --allow-env for them: if set, Deno sends ` +
        `upstream requests through that proxy; grant --allow-env=${blocked.join(",")}, or ` +
        "pass --enable-proxy to use it on purpose",
    );
  }
}

function originOf(url: string | URL): string {
  try {
    return new URL(url).origin;
  } catch {
    return String(url);
  }
}

/** The useful end of Deno's "fetch failed: error sending request for url (...): ..." chain. */
function networkDetail(error: unknown): string {
  const messages: string[] = [];
  for (let current = error; current instanceof Error; current = current.cause) {
    messages.push(current.message);
  }
  const deepest = messages.at(-1) ?? String(error);
  return deepest.replace(/^error sending request for url \([^)]*\): /, "")
    .replace(/^client error \(Connect\): /, "") || "the request failed";
}
