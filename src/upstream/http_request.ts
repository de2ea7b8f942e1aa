// HTTP requests to a remote MCP server, shared by our client transports: redirects followed only
// within the server's origin (so our headers and tokens never reach another host), and one-line
// descriptions of answers they cannot use.

import type { FetchLike } from "../sdk.ts";

const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * `fetch(url, init)` with redirects followed by hand: only to the same origin, at most 5, and
 * for a POST only 307 and 308 (which keep the method and body). Any other redirect is returned.
 */
export async function fetchWithinOrigin(
  fetch: FetchLike,
  url: URL,
  init: RequestInit,
): Promise<Response> {
  const options = { ...init, redirect: "manual" as const };
  let at = url;
  for (let hops = 0;; hops++) {
    const response = await fetch(at, options);
    const target = redirectTarget(response, at);
    const keepsMethod = response.status === 307 || response.status === 308 ||
      (init.method ?? "GET") === "GET";
    if (!target || hops === MAX_REDIRECTS || !keepsMethod || !sameOrigin(at, target)) {
      return response;
    }
    await response.body?.cancel();
    at = target;
  }
}

/**
 * The start of a refusal's body, for the error message: a few KB read within 2 s at most (a
 * server may send a large or endless body with its refusal); the rest is let go. A 2xx answer
 * (refused for its content type) is not read: "".
 */
export async function refusalText(response: Response, limit = 4096): Promise<string> {
  if (!response.body) return "";
  if (response.ok) {
    await response.body.cancel().catch(() => {});
    return "";
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const timer = setTimeout(() => void reader.cancel().catch(() => {}), 2000);
  try {
    while (text.length < limit) {
      const { done, value } = await reader.read();
      if (done) return text + decoder.decode();
      text += decoder.decode(value, { stream: true });
    }
    return text;
  } catch {
    return text;
  } finally {
    clearTimeout(timer);
    reader.cancel().catch(() => {});
  }
}

/** The media type of a Content-Type value, lowercased, without parameters. */
export function mediaType(header: string | null): string | undefined {
  if (!header) return undefined;
  const semicolon = header.indexOf(";");
  return (semicolon === -1 ? header : header.slice(0, semicolon)).trim().toLowerCase() || undefined;
}

function redirectTarget(response: Response, from: URL): URL | undefined {
  const location = REDIRECTS.has(response.status) ? response.headers.get("location") : null;
  if (!location) return undefined;
  try {
    return new URL(location, from);
  } catch {
    return undefined;
  }
}

/** Same scheme, host and port, and no user info of its own: where our headers may go. */
export function sameOrigin(from: URL, to: URL): boolean {
  const userinfo = (url: URL) => `${url.username}:${url.password}`;
  return from.origin === to.origin && userinfo(from) === userinfo(to);
}

/** Why the server's answer to `method` cannot be used, in one line (a body, shortened). */
export function refusal(method: string, response: Response, body: string, url: URL): string {
  const target = redirectTarget(response, url);
  if (target) {
    const why = sameOrigin(url, target)
      ? "too many redirects, or one that changes the method"
      : "another origin";
    target.username =
      target.password =
      target.search =
      target.hash =
        "";
    return `the ${method} was redirected to ${target.href} (not followed: ${why})`;
  }
  const status = `${response.status} ${response.statusText}`.trim();
  const detail = body.trim().slice(0, 300);
  if (response.ok) {
    const type = response.headers.get("content-type") ?? "none";
    return `the ${method} was answered ${status} with content type "${type}"`;
  }
  return `the ${method} was answered ${status}${detail ? `: ${detail}` : ""}`;
}
