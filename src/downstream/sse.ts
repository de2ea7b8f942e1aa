// Legacy HTTP+SSE server transport (protocol 2024-11-05) over a web ReadableStream: GET opens the
// stream and gets an `endpoint` event; the client POSTs each message to that endpoint (202).

import type { Transport } from "../sdk.ts";
import type { JSONRPCMessage } from "../jsonrpc.ts";

const encoder = new TextEncoder();
const KEEPALIVE_MS = 15_000;

/** One SSE session. `response` is what the GET handler returns. */
export class SseServerTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  readonly sessionId: string = crypto.randomUUID();
  readonly response: Response;
  #controller?: ReadableStreamDefaultController<Uint8Array>;
  #keepalive?: ReturnType<typeof setInterval>;
  #closed = false;

  /** `endpoint` is the path messages are POSTed to; the session id is appended as a query. */
  constructor(endpoint: string, headers: HeadersInit = {}) {
    const url = `${endpoint}?sessionId=${this.sessionId}`;
    const stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
        controller.enqueue(encoder.encode(`event: endpoint\ndata: ${url}\n\n`));
      },
      cancel: () => void this.close(),
    });
    this.response = new Response(stream, {
      headers: {
        ...headers,
        "content-type": "text/event-stream",
        "cache-control": "no-cache, no-transform",
        "x-accel-buffering": "no",
      },
    });
    this.#keepalive = setInterval(() => this.#write(": keepalive\n\n"), KEEPALIVE_MS);
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  send(message: JSONRPCMessage): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("SSE stream is closed"));
    this.#write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
    return Promise.resolve();
  }

  /** Delivers POSTed messages to the bridge. */
  receive(messages: readonly JSONRPCMessage[]): void {
    for (const message of messages) this.onmessage?.(message);
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    clearInterval(this.#keepalive);
    try {
      this.#controller?.close();
    } catch {
      // The client already went away.
    }
    this.onclose?.();
    return Promise.resolve();
  }

  #write(text: string): void {
    try {
      this.#controller?.enqueue(encoder.encode(text));
    } catch {
      void this.close();
    }
  }
}
