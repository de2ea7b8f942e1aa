// Server-sent events from decoded text chunks, as the HTML standard parses them (CR, LF or CRLF
// line ends; `data`, `event`, `id`, `retry`; comments), in one pass over each chunk: a long line
// split over many chunks is joined once, when it ends.

import { parseServerMessage, parseServerPieces } from "../jsonrpc.ts";
import { chunkReader } from "../lines.ts";

export interface SseEvent {
  /** The event type; "message" when the event named none. */
  event: string;
  data: string;
  /**
   * The data of an event whose one data line was long (LONG_DATA or more), in the pieces it came
   * in, never joined unless `data` is read: whoever can take it in pieces makes no string of its
   * size (see messageOf).
   */
  pieces?: readonly string[];
}

/**
 * The message a server's event carries (see parseServerMessage), read from its pieces when it
 * came in pieces; undefined when its data is empty (a priming event).
 */
export function messageOf(event: SseEvent): ReturnType<typeof parseServerMessage> | undefined {
  if (event.pieces) return parseServerPieces(event.pieces);
  return event.data === "" ? undefined : parseServerMessage(event.data);
}

/** A data line from this length on is kept in the pieces it arrived in (SseEvent.pieces). */
const LONG_DATA = 128 * 1024;

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
  #partialLength = 0;
  #data = "";
  /** The event's data so far when it is one long line, in pieces (else #data holds it). */
  #pieces?: string[];
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
      const line = text.slice(start, end);
      start = end + 1;
      if (this.#partial.length === 0) {
        this.#line(line);
        continue;
      }
      const partial = this.#partial;
      partial.push(line);
      const long = this.#partialLength + line.length >= LONG_DATA;
      this.#partial = [];
      this.#partialLength = 0;
      if (!long || !this.#longData(partial)) this.#line(partial.join(""));
    }
    if (start < text.length) {
      const rest = text.slice(start);
      this.#partial.push(rest);
      this.#partialLength += rest.length;
    }
  }

  /**
   * A long line, in pieces: taken as the event's data, without joining them, when it is a data
   * line and the event's first one (else false, and it is read as any line).
   */
  #longData(pieces: string[]): boolean {
    if (this.#hasData) return false;
    let head = pieces[0]!;
    for (let i = 1; head.length < 6 && i < pieces.length; i++) head += pieces[i];
    if (!head.startsWith("data:")) return false;
    // The field name, its colon and one space go.
    let skip = head.charCodeAt(5) === 32 ? 6 : 5;
    while (skip > 0) {
      const first = pieces[0]!;
      if (first.length > skip) {
        pieces[0] = first.slice(skip);
        break;
      }
      skip -= first.length;
      pieces.shift();
    }
    this.#pieces = pieces;
    this.#hasData = true;
    return true;
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
        if (this.#pieces) {
          this.#data = this.#pieces.join("");
          this.#pieces = undefined;
        }
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
    const pieces = this.#pieces;
    this.#data = "";
    this.#pieces = undefined;
    this.#hasData = false;
    this.#onEvent(pieces ? piecesEvent(event, pieces) : { event, data });
  }
}

/** An event whose data is `pieces`: joined (once) only if its `data` is read. */
function piecesEvent(event: string, pieces: readonly string[]): SseEvent {
  let data: string | undefined;
  return {
    event,
    pieces,
    get data() {
      return data ??= pieces.join("");
    },
  };
}
