// Our own stdin/stdout as a transport (connect mode): newline-delimited JSON-RPC, CRLF tolerated,
// lines of any size across partial reads. stdout carries protocol frames and nothing else.

import { formatError } from "../errors.ts";
import {
  checkMessage,
  errorResponse,
  INVALID_REQUEST,
  jsonChunks,
  type JSONRPCMessage,
  keepText,
  LARGE_MESSAGE,
  PARSE_ERROR,
  parseLargeMessage,
  type RequestId,
} from "../jsonrpc.ts";
import { type ByteReader, framed, LineBuffer, pumpLines } from "../lines.ts";
import { log } from "../log.ts";
import type { Transport } from "../sdk.ts";

/**
 * Frames up to this size go to stdout with one synchronous write: 1.9 us instead of 28 us for a
 * write through the stream (measured), and small enough to fit the pipe's buffer, so a client
 * that is slow to read cannot hold the event loop for long. Bigger frames take the stream.
 */
const SYNC_WRITE_MAX = 16 * 1024;

export class StdioServerTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  /**
   * Called when stdin ends. Answers can still be written; without a handler, the transport
   * closes at once.
   */
  oninputend?: () => void;
  #input: ReadableStream<Uint8Array> | ByteReader;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  /** Synchronous writes, for our own stdout only. */
  #sync?: { writeSync(bytes: Uint8Array): number };
  #written: Promise<void> = Promise.resolve();
  /** Writes still in the stream: later frames wait behind them, in order. */
  #queued = 0;
  #closed = false;
  /** Where large frames are encoded, one at a time. */
  #large = new LineBuffer();

  /**
   * Reads `input` and writes `output`; by default our stdin (read directly, not through its
   * stream) and our stdout (mostly synchronously).
   */
  constructor(
    input: ReadableStream<Uint8Array> | ByteReader = Deno.stdin,
    output?: WritableStream<Uint8Array>,
  ) {
    this.#input = input;
    this.#writer = (output ?? Deno.stdout.writable).getWriter();
    if (!output) this.#sync = Deno.stdout;
  }

  /** Starts reading; stdin's end calls oninputend (or closes the transport). */
  start(): Promise<void> {
    pumpLines(this.#input, (line) => this.#onLine(line), undefined, {
      large: LARGE_MESSAGE,
      take: (bytes) => this.#onLarge(bytes),
    })
      .catch((error) => log.debug(`stdin: ${formatError(error)}`))
      .finally(() => {
        log.debug("stdin closed");
        if (this.oninputend) this.oninputend();
        else void this.close();
      });
    return Promise.resolve();
  }

  send(message: JSONRPCMessage): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("stdout is closed"));
    const body = jsonChunks(message);
    const line = typeof body === "string" ? this.#large.line(body) : undefined;
    const chunks = line ? [line] : framed("", body, "\n");
    let bytes = chunks[0]!;
    if (this.#sync && this.#queued === 0 && chunks.length === 1 && bytes.length <= SYNC_WRITE_MAX) {
      try {
        while (bytes.length > 0) bytes = bytes.subarray(this.#sync.writeSync(bytes));
        return Promise.resolve();
      } catch (error) {
        // A pipe set non-blocking by the client: the rest goes through the stream.
        if (!(error instanceof Deno.errors.WouldBlock)) return Promise.reject(error);
      }
      chunks[0] = bytes;
    }
    this.#queued++;
    const write = Promise.all(chunks.map((chunk) => this.#writer.write(chunk)))
      .then(() => {})
      .finally(() => {
        this.#queued--;
        if (line) this.#large.release();
      });
    this.#written = write.catch(() => {});
    return write;
  }

  /** Stops; resolves once everything already sent has been written to stdout. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#written;
    this.onclose?.();
  }

  /** A large line, as bytes: handled here when parseLarge takes it, else as text (#onLine). */
  #onLarge(bytes: Uint8Array<ArrayBuffer>): boolean {
    if (this.#closed) return true;
    const message = parseLargeMessage(bytes, { strict: true });
    if (message) this.#deliver(message);
    return message !== undefined;
  }

  #onLine(line: string): void {
    if (this.#closed || line.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      log.warn(`ignored a line on stdin that is not JSON (${line.length} characters)`);
      void this.send(errorResponse(null, PARSE_ERROR, "Parse error: the line is not valid JSON"))
        .catch(() => {});
      return;
    }
    if (Array.isArray(value) && value.length === 0) {
      log.warn("ignored an empty batch on stdin");
      void this.send(errorResponse(null, INVALID_REQUEST, "Invalid Request: empty batch"))
        .catch(() => {});
      return;
    }
    for (const item of Array.isArray(value) ? value : [value]) {
      const problem = checkMessage(item, true);
      if (problem) {
        log.warn(`ignored a message on stdin: ${problem}`);
        // Answered, so a client waiting on it does not hang: with its id when it is a request's.
        void this.send(
          errorResponse(requestIdOf(item), INVALID_REQUEST, `Invalid Request: ${problem}`),
        )
          .catch(() => {});
        continue;
      }
      // A large lone message goes on as this line, not serialized again (a batch's are).
      if (item === value) keepText(item, line);
      this.#deliver(item as JSONRPCMessage);
    }
  }

  #deliver(message: JSONRPCMessage): void {
    try {
      this.onmessage?.(message);
    } catch (error) {
      log.warn(`could not handle a message from stdin: ${formatError(error)}`);
    }
  }
}

/**
 * The id of a malformed message meant as a request (it has a "method"), if that id is valid; null
 * otherwise (a response's id names a request of ours, not theirs).
 */
function requestIdOf(item: unknown): RequestId | null {
  if (typeof item !== "object" || item === null || Array.isArray(item)) return null;
  const record = item as Record<string, unknown>;
  if (!("method" in record)) return null;
  const id = record.id;
  return typeof id === "string" || (typeof id === "number" && Number.isFinite(id)) ? id : null;
}
