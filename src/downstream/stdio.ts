// Our own stdin/stdout as a transport (connect mode): newline-delimited JSON-RPC, CRLF tolerated,
// lines of any size across partial reads. stdout carries protocol frames and nothing else.

import { formatError } from "../errors.ts";
import { checkMessage, errorResponse, type JSONRPCMessage, PARSE_ERROR } from "../jsonrpc.ts";
import { pumpLines } from "../lines.ts";
import { log } from "../log.ts";
import type { Transport } from "../sdk.ts";

const encoder = new TextEncoder();

export class StdioServerTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  /**
   * Called when stdin ends. Answers can still be written; without a handler, the transport
   * closes at once.
   */
  oninputend?: () => void;
  #input: ReadableStream<Uint8Array>;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #written: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(
    input: ReadableStream<Uint8Array> = Deno.stdin.readable,
    output: WritableStream<Uint8Array> = Deno.stdout.writable,
  ) {
    this.#input = input;
    this.#writer = output.getWriter();
  }

  /** Starts reading; stdin's end calls oninputend (or closes the transport). */
  start(): Promise<void> {
    pumpLines(this.#input, (line) => this.#onLine(line))
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
    const write = this.#writer.write(encoder.encode(JSON.stringify(message) + "\n"));
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
    for (const item of Array.isArray(value) ? value : [value]) {
      const problem = checkMessage(item);
      if (problem) {
        log.warn(`ignored a message on stdin: ${problem}`);
        continue;
      }
      try {
        this.onmessage?.(item as JSONRPCMessage);
      } catch (error) {
        log.warn(`could not handle a message from stdin: ${formatError(error)}`);
      }
    }
  }
}
