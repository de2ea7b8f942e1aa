// The $BROWSER the conformance client driver gives `mcp-proxy connect`: the conformance suite's
// authorization server approves every request at once with a 302 to the redirect_uri, so this
// "browser" GETs the authorization URL (last argument), then the Location, our loopback callback.
// Run with --allow-net=127.0.0.1,localhost only.

import { log } from "../src/log.ts";

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** Requests `url` without following redirects; returns the status and the Location. */
async function visit(url: string): Promise<{ status: number; location?: URL }> {
  const response = await fetch(url, { redirect: "manual" });
  await response.body?.cancel();
  const location = response.headers.get("location");
  return { status: response.status, location: location ? new URL(location, url) : undefined };
}

/** Approves at the authorization server, then lands on the proxy's callback. */
async function authorize(authorization: string): Promise<void> {
  const approved = await visit(authorization);
  const callback = approved.location;
  if (!callback) {
    throw new Error(`the authorization server answered ${approved.status}, not a redirect`);
  }
  // Only the proxy's loopback callback is followed: this helper approves nothing else.
  if (callback.protocol !== "http:" || !LOOPBACK.has(callback.hostname)) {
    throw new Error(`the redirect goes to ${callback.origin}, not a loopback callback`);
  }
  const landed = await visit(callback.href);
  if (landed.status !== 200) throw new Error(`the callback answered ${landed.status}`);
}

if (import.meta.main) {
  const authorization = Deno.args.at(-1);
  if (!authorization) {
    log.error("usage: conformance_browser.ts <authorization URL>");
    Deno.exit(2);
  }
  try {
    await authorize(authorization);
  } catch (error) {
    log.error(`conformance browser: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exit(1);
  }
}
