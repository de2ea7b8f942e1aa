// Checks every HTTP request passes before it reaches a route: DNS-rebinding protection (Host and
// Origin), CORS for allowed origins only, and the API key compared in constant time.

import { jsonRpcErrorResponse } from "./body.ts";

export interface GuardOptions {
  /** The address we listen on (its own name is allowed as a Host). */
  hostname: string;
  /** Extra Host values allowed ("name" or "name:port"); "*" allows any. */
  allowedHosts: readonly string[];
  /** Extra browser origins allowed ("https://app.example"); "*" allows any. */
  corsOrigins: readonly string[];
  apiKey?: string;
}

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);
const ALLOW_HEADERS =
  "Content-Type, Accept, Authorization, X-API-Key, Mcp-Session-Id, MCP-Protocol-Version, " +
  "Last-Event-ID, Mcp-Method, Mcp-Name";
const EXPOSE_HEADERS = "Mcp-Session-Id, MCP-Protocol-Version, WWW-Authenticate";

export class Guards {
  #hosts: Set<string>;
  #anyHost: boolean;
  #origins: Set<string>;
  #anyOrigin: boolean;
  #keys?: KeyRing;

  constructor(options: GuardOptions) {
    this.#hosts = new Set([...LOOPBACK, ...options.allowedHosts.map((h) => h.toLowerCase())]);
    const own = options.hostname.toLowerCase();
    if (own !== "0.0.0.0" && own !== "::") this.#hosts.add(own.includes(":") ? `[${own}]` : own);
    this.#anyHost = options.allowedHosts.includes("*");
    this.#origins = new Set(options.corsOrigins.map((o) => o.toLowerCase()));
    this.#anyOrigin = options.corsOrigins.includes("*");
    if (options.apiKey !== undefined) this.#keys = new KeyRing([options.apiKey]);
  }

  /** 403 unless the Host header names us (DNS-rebinding protection). */
  checkHost(req: Request): Response | undefined {
    const host = (req.headers.get("host") ?? "").toLowerCase();
    // A name or an address, and a port: nothing else (no userinfo, spaces or half brackets).
    if (host !== "" && !HOST_SHAPE.test(host)) {
      return forbidden(`invalid Host header "${host.slice(0, 100)}"`);
    }
    if (this.#anyHost) return undefined;
    if (this.#hosts.has(host) || this.#hosts.has(stripPort(host))) return undefined;
    return forbidden(`Host "${host}" is not allowed; add it with --allowed-host`);
  }

  /** 403 when a browser Origin is present and not allowed. */
  checkOrigin(req: Request): Response | undefined {
    const origin = req.headers.get("origin");
    if (origin === null || this.#originAllowed(origin)) return undefined;
    return forbidden(`Origin "${origin}" is not allowed; add it with --cors-origin`);
  }

  /** The CORS headers for an allowed Origin, or none. */
  corsHeaders(req: Request): Record<string, string> | undefined {
    const origin = req.headers.get("origin");
    if (origin === null || !this.#originAllowed(origin)) return undefined;
    return {
      "access-control-allow-origin": this.#anyOrigin ? "*" : origin,
      "access-control-expose-headers": EXPOSE_HEADERS,
      vary: "Origin",
    };
  }

  /** The answer to a CORS preflight (OPTIONS). */
  preflight(req: Request): Response {
    const headers: Record<string, string> = {
      allow: "GET, POST, DELETE, OPTIONS",
      ...this.corsHeaders(req),
    };
    if (headers["access-control-allow-origin"]) {
      headers["access-control-allow-methods"] = "GET, POST, DELETE, OPTIONS";
      headers["access-control-allow-headers"] = req.headers.get("access-control-request-headers") ??
        ALLOW_HEADERS;
      headers["access-control-max-age"] = "86400";
    }
    return new Response(null, { status: 204, headers });
  }

  /**
   * 401 unless the request carries an accepted key (Authorization: Bearer, or X-API-Key): the
   * global --api-key, or one of `route`'s own tokens. Open when neither is configured.
   */
  async checkApiKey(req: Request, route?: KeyRing): Promise<Response | undefined> {
    if (!this.#keys && !route) return undefined;
    const auth = req.headers.get("authorization");
    const bearer = auth && /^bearer\s+/i.test(auth) ? auth.replace(/^bearer\s+/i, "") : null;
    const given = bearer ?? req.headers.get("x-api-key");
    if (given !== null) {
      const [global, own] = await Promise.all([this.#keys?.accepts(given), route?.accepts(given)]);
      if (global || own) return undefined;
    }
    const why = given === null
      ? "Unauthorized: send the API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
      : "Unauthorized: the API key is wrong";
    return jsonRpcErrorResponse(401, -32000, why, {
      "www-authenticate": 'Bearer realm="mcp-proxy"',
    });
  }

  #originAllowed(origin: string): boolean {
    if (this.#anyOrigin) return true;
    const lower = origin.toLowerCase();
    if (this.#origins.has(lower)) return true;
    try {
      const url = new URL(lower);
      return (url.protocol === "http:" || url.protocol === "https:") && LOOPBACK.has(url.hostname);
    } catch {
      return false;
    }
  }
}

const HOST_SHAPE = /^(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(:\d{1,5})?$/;

function stripPort(host: string): string {
  if (host.startsWith("[")) return host.slice(0, host.indexOf("]") + 1);
  const colon = host.indexOf(":");
  return colon === -1 || host.indexOf(":", colon + 1) !== -1 ? host : host.slice(0, colon);
}

function forbidden(message: string): Response {
  return jsonRpcErrorResponse(403, -32000, `Forbidden: ${message}`);
}

async function digest(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/** Compares two equal-length digests without an early exit. */
function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length && i < b.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Keys compared in constant time (SHA-256 digests, every key checked, no early exit). */
export class KeyRing {
  #digests: Promise<Uint8Array[]>;

  constructor(keys: readonly string[]) {
    this.#digests = Promise.all(keys.map(digest));
  }

  async accepts(given: string): Promise<boolean> {
    const candidate = await digest(given);
    let accepted = false;
    for (const key of await this.#digests) accepted = timingSafeEqual(candidate, key) || accepted;
    return accepted;
  }
}
