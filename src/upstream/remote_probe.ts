// How a remote transport is judged while it is being tried: what the last HTTP answer looked
// like, whether a failure means "try the other transport", and why it failed, in a few words.

import { formatError, ProxyError } from "../errors.ts";
import { StreamableHttpError } from "./streamable_client.ts";

export type Kind = "http" | "sse";
export const NAME: Record<Kind, string> = { http: "Streamable HTTP", sse: "SSE" };

/** What the last HTTP answer looked like while a transport was being tried. */
export interface Observed {
  status: number;
  statusText: string;
  contentType: string;
  /** For a 400: whether its body was a JSON-RPC error (the server speaks MCP). */
  jsonRpcError: boolean;
}

/** The legacy SSE stream could not be opened (with the HTTP status, when there was an answer). */
export class SseOpenError extends Error {
  readonly status?: number;
  constructor(message: string, options: { status?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "SseOpenError";
    this.status = options.status;
  }
}

/** Reads what matters of a response seen while probing (the body only for a 400). */
export async function observe(response: Response): Promise<Observed> {
  const observed: Observed = {
    status: response.status,
    statusText: response.statusText,
    contentType: response.headers.get("content-type") ?? "",
    jsonRpcError: false,
  };
  if (response.status === 400) {
    try {
      const body = await response.clone().json();
      observed.jsonRpcError = typeof body?.error?.code === "number";
    } catch {
      observed.jsonRpcError = false;
    }
  }
  return observed;
}

const EVENT_STREAM = /^text\/event-stream/i;

/**
 * Whether a failure of `kind` on the first message means "try the other transport": for Streamable
 * HTTP a 404 or 405, or a 400 whose body is not a JSON-RPC error; for SSE a 4xx, an answer that
 * is not an event stream, or no `endpoint` event in time.
 */
export function fallsBack(kind: Kind, error: unknown, seen: Observed | undefined): boolean {
  if (kind === "http") {
    if (!(error instanceof StreamableHttpError)) return false;
    return error.status === 404 || error.status === 405 ||
      (error.status === 400 && seen?.jsonRpcError === false);
  }
  if (error instanceof ProxyError) return error.code === "timeout";
  if (!(error instanceof SseOpenError)) return false;
  const status = seen?.status ?? error.status ?? 0;
  return (status >= 400 && status < 500) || !EVENT_STREAM.test(seen?.contentType ?? "");
}

/** Why a transport failed, in a few words. */
export function reason(kind: Kind, error: unknown, seen: Observed | undefined): string {
  if (error instanceof ProxyError) return error.message;
  if (seen && (seen.status >= 400 || (kind === "sse" && !EVENT_STREAM.test(seen.contentType)))) {
    const what = kind === "http" ? "POST" : "GET";
    const type = seen.status < 400 ? ` with content type "${seen.contentType || "none"}"` : "";
    return `the ${what} was answered ${seen.status} ${seen.statusText}${type}`.trim();
  }
  return formatError(error);
}

/** Rejects with a ProxyError("timeout") when `promise` takes longer than `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ProxyError("timeout", message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A URL as we show it in logs: no query (it may carry a key), no user info. */
export function shownUrl(url: URL): string {
  return `${url.origin}${url.pathname}${url.search ? "?..." : ""}`;
}
