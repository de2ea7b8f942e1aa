// The auth-aware fetch the SDK transports receive: sends the access token, and on a 401 (any
// request, not only initialize) or a 403 insufficient_scope gets a new token and retries once.

import { log } from "../log.ts";
import type { FetchLike } from "../sdk.ts";
import { parseBearerChallenge } from "./challenge.ts";
import type { OAuthProvider } from "./provider.ts";

/** What authFetch needs of the OAuthProvider. */
export type TokenSource = Pick<OAuthProvider, "token" | "unauthorized" | "insufficientScope">;

/** Wraps `base` (which carries the --header values) with the provider's tokens. */
export function authFetch(base: FetchLike, provider: TokenSource): FetchLike {
  const send = (url: string | URL, init: RequestInit | undefined, token: string | undefined) => {
    if (!token) return base(url, init);
    const headers = new Headers(init?.headers);
    headers.set("authorization", `Bearer ${token}`);
    return base(url, { ...init, headers });
  };
  return async (url, init) => {
    // A 401 then, with the new token, a 403 for more scope: two renewals, then the answer stands.
    let token = await provider.token();
    for (let renewals = 0;; renewals++) {
      const response = await send(url, init, token);
      if ((response.status !== 401 && response.status !== 403) || renewals === 2) return response;
      const challenge = parseBearerChallenge(response.headers.get("www-authenticate"));
      let renewed = false;
      if (response.status === 401) {
        log.debug("the server answered 401; getting a token");
        renewed = await provider.unauthorized(challenge, token);
      } else if (challenge?.error === "insufficient_scope") {
        log.info(
          `the server wants more scope (${challenge.scope ?? "unnamed"}); authorizing again`,
        );
        renewed = await provider.insufficientScope(challenge, token);
      }
      if (!renewed) return response;
      await response.body?.cancel();
      token = await provider.token();
    }
  };
}
