// Server-sent events from decoded text chunks, as the HTML standard parses them (CR, LF or CRLF
// line ends; `data`, `event`, `id`, `retry`; comments), in one pass over each chunk: a long line
// split over many chunks is joined once, when it ends.

import { chunkReader } from "../lines.ts";

export interface SseEvent {
  /** The event type; "message" when the event named none. */
  event: string;
  data: string;
}

const STREAM: TextDecodeOptions = { stream: true };
/**
 * Decodes chunks that end on a character boundary, for every stream at once: no decoder of its
 * own for each stream. The BOM is kept for the parser, which drops one at the stream's start.
 */
const whole = new TextDecoder("utf-8", { ignoreBOM: true });

/** When to stop reading before the stream ends: `done` is asked after each chunk. */
export interface ReadUntil {
  stop?: Stop;
  done?: () => boolean;
}

/**
 * Stops a reading from outside (a request's answer no longer wanted): what an AbortController
 * would do for readEvents, without an event listener added and removed for every stream.
 */
export class Stop {
  #stopped = false;
  /** Ends the read waiting now, if one is. */
  onStop?: () => void;

  get stopped(): boolean {
    return this.#stopped;
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.onStop?.();
  }
}

/**
 * Reads `body` into `parser` until it ends, `until.stop` is stopped or `until.done()` is true; the
 * error that broke the stream, if one did. A stream left early is cancelled (its connection freed).
 */
export async function readEvents(
  body: ReadableStream<Uint8Array> | null,
  parser: SseParser,
  until: ReadUntil = {},
): Promise<unknown> {
  if (!body) return undefined;
  const chunks = chunkReader(body, FIRST_READ, MAX_READ);
  /** The stream's own decoder, from the first chunk that ends inside a character on. */
  let split: TextDecoder | undefined;
  let ended = false;
  const cancel = () => void chunks.cancel().catch(() => {});
  const stop = until.stop;
  if (stop) stop.onStop = cancel;
  try {
    for (let chunk = await chunks.read(); chunk; chunk = await chunks.read()) {
      if (split === undefined && chunk[chunk.length - 1]! < 0x80) {
        parser.push(whole.decode(chunk));
      } else {
        split ??= new TextDecoder("utf-8", { ignoreBOM: true });
        parser.push(split.decode(chunk, STREAM));
      }
      if (until.done?.()) return undefined;
    }
    ended = true;
    if (split && !stop?.stopped) parser.push(split.decode());
    return undefined;
  } catch (error) {
    return error;
  } finally {
    if (stop) stop.onStop = undefined;
    if (!ended) cancel();
  }
}

/** The first read size of an event stream: what an idle stream holds while it waits. */
const FIRST_READ = 8 * 1024;
/** Reads that fill their buffer double it, up to this (a large message arrives in fewer reads). */
const MAX_READ = 64 * 1024;

export class SseParser {
  /**
   * The last event id: an `id` field counts once its event is complete (a blank line), as in
   * EventSource, so a stream cut inside an event never resumes past it. It persists across events.
   */
  lastEventId?: string;
  /** The `id` field of the event being read, not yet complete. */
  #idBuffer?: string;
  /** The last valid `retry` field, in milliseconds. */
  retryMs?: number;
  #onEvent: (event: SseEvent) => void;
  /** The start of a line whose end has not arrived yet. */
  #partial: string[] = [];
  #data = "";
  #hasData = false;
  #event = "";
  /** The last chunk ended in CR: an LF starting the next one belongs to the same line end. */
  #afterCR = false;
  #started = false;

  constructor(onEvent: (event: SseEvent) => void) {
    this.#onEvent = onEvent;
  }

  push(chunk: string): void {
    if (chunk.length === 0) return;
    let text = chunk;
    if (!this.#started) {
      this.#started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.#afterCR && text.charCodeAt(0) === 10) text = text.slice(1);
    if (text.includes("\r")) {
      this.#afterCR = text.endsWith("\r");
      text = text.replace(/\r\n?/g, "\n");
    } else {
      this.#afterCR = false;
    }
    let start = 0;
    for (let end = text.indexOf("\n"); end !== -1; end = text.indexOf("\n", start)) {
      let line = text.slice(start, end);
      if (this.#partial.length > 0) {
        this.#partial.push(line);
        line = this.#partial.join("");
        this.#partial = [];
      }
      this.#line(line);
      start = end + 1;
    }
    if (start < text.length) this.#partial.push(text.slice(start));
  }

  #line(line: string): void {
    if (line.length === 0) return this.#dispatch();
    const colon = line.indexOf(":");
    if (colon === 0) return; // a comment
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    switch (field) {
      case "data":
        this.#data = this.#hasData ? `${this.#data}\n${value}` : value;
        this.#hasData = true;
        break;
      case "event":
        this.#event = value;
        break;
      case "id":
        if (!value.includes("\0")) this.#idBuffer = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
    }
  }

  #dispatch(): void {
    if (this.#idBuffer !== undefined) this.lastEventId = this.#idBuffer;
    const event = this.#event || "message";
    this.#event = "";
    if (!this.#hasData) return;
    const data = this.#data;
    this.#data = "";
    this.#hasData = false;
    this.#onEvent({ event, data });
  }
}
