// Legacy HTTP+SSE server transport (protocol 2024-11-05) over a web ReadableStream: GET opens the
// stream and gets an `endpoint` event; the client POSTs each message to that endpoint (202).

import type { Transport } from "../sdk.ts";
import { jsonChunks, type JSONRPCMessage } from "../jsonrpc.ts";
import { log } from "../log.ts";
import { framed } from "../lines.ts";
import { enqueueIfRead, MAX_UNREAD_BYTES } from "./streamable.ts";

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
  #unread: { biggest?: number } = {};

  /** `endpoint` is the path messages are POSTed to; the session id is appended as a query. */
  constructor(endpoint: string, headers: HeadersInit = {}) {
    const url = `${endpoint}?sessionId=${this.sessionId}`;
    const stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
        controller.enqueue(encoder.encode(`event: endpoint\ndata: ${url}\n\n`));
      },
      pull: () => void (this.#unread.biggest = 0),
      cancel: () => void this.close(),
    }, new ByteLengthQueuingStrategy({ highWaterMark: MAX_UNREAD_BYTES }));
    this.response = new Response(stream, {
      headers: {
        ...headers,
        "content-type": "text/event-stream",
        "cache-control": "no-cache, no-transform",
        "x-accel-buffering": "no",
      },
    });
    this.#keepalive = setInterval(() => this.#write(": keepalive\n\n", "", ""), KEEPALIVE_MS);
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  send(message: JSONRPCMessage): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("SSE stream is closed"));
    this.#write("event: message\ndata: ", jsonChunks(message), "\n\n");
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

  /** Writes an event; a client that left MAX_UNREAD_BYTES unread ends the session. */
  #write(head: string, text: string | readonly Uint8Array[], tail: string): void {
    const controller = this.#controller;
    if (!controller) return;
    try {
      const chunks = framed(head, text, tail);
      if (enqueueIfRead(controller, this.#unread, chunks)) return;
      log.warn(`SSE session ${this.sessionId}: the client is not reading its stream; ended`);
      controller.error(new Error("the client is not reading this stream"));
      this.#controller = undefined;
    } catch {
      // Closed or cancelled already.
    }
    void this.close();
  }
}
