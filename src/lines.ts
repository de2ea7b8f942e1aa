// Splits a byte stream into text lines (LF or CRLF) for stdio framing and stderr relays, without
// a per-line promise: a multi-megabyte line arriving in many chunks is joined once.

/** Something read into a buffer, like Deno.stdin: fewer layers than its ReadableStream. */
export interface ByteReader {
  read(buffer: Uint8Array): Promise<number | null>;
}

const READ_SIZE = 64 * 1024;
/**
 * A byte stream's first buffer: it doubles on every read that fills it, up to the read size. An
 * idle child (one per session) then holds 8 KiB, not 64, while its quick answers fit at once.
 */
const FIRST_READ = 8 * 1024;

const encoder = new TextEncoder();
/** From this length on, a text is encoded apart from its framing (see framed). */
const SPLIT_MIN = 64 * 1024;

/**
 * The UTF-8 bytes of `head + body + tail`, as one or more chunks to write in order. A long text
 * is encoded by itself, not joined to its framing first: joining would copy it into a new string
 * of its size, a large object that only a full garbage collection frees. A body given as bytes
 * (already UTF-8, in one piece or several) goes as it is, between its framing's.
 */
export function framed(
  head: string,
  body: string | Uint8Array | readonly Uint8Array[],
  tail: string,
): Uint8Array[] {
  if (typeof body === "string" && body.length < SPLIT_MIN) {
    return [encoder.encode(head + body + tail)];
  }
  const chunks = typeof body === "string"
    ? [encoder.encode(body)]
    : body instanceof Uint8Array
    ? [body]
    : [...body];
  if (head) chunks.unshift(encoder.encode(head));
  if (tail) chunks.push(encoder.encode(tail));
  return chunks;
}

/** Lines from SCRATCH_MIN to SCRATCH_MAX characters are encoded into a LineBuffer's memory. */
const SCRATCH_MIN = SPLIT_MIN;
const SCRATCH_MAX = 4 * 1024 * 1024;

/**
 * One buffer that large lines are encoded into, reused for the next once the write from it is
 * done: encoding a 1 MiB text into fresh memory costs 0.6 ms, mostly the page faults of that
 * memory, against 0.04 ms into memory already used. For a writer that knows when a write is done
 * (a child's stdin, our stdout); not for a response stream, whose reader keeps chunks for later.
 */
export class LineBuffer {
  #buffer?: Uint8Array<ArrayBuffer>;
  #busy = false;

  /**
   * `text` and a newline, encoded into the buffer: undefined when the text is small or very
   * large, the buffer is still being written from, or the text does not fit (the buffer grows to
   * its length and an eighth: room for ASCII and a few wider characters). Call release() once the
   * bytes are written.
   */
  line(text: string): Uint8Array<ArrayBuffer> | undefined {
    if (this.#busy || text.length < SCRATCH_MIN || text.length > SCRATCH_MAX) return undefined;
    if (!this.#buffer || this.#buffer.length <= text.length) {
      this.#buffer = new Uint8Array(text.length + (text.length >> 3) + 1);
    }
    const { read, written } = encoder.encodeInto(text, this.#buffer);
    if (read < text.length || written >= this.#buffer.length) return undefined;
    this.#buffer[written] = 10;
    this.#busy = true;
    return this.#buffer.subarray(0, written + 1);
  }

  /** The bytes line() gave are written: the buffer may take the next line. */
  release(): void {
    this.#busy = false;
  }
}

/**
 * The bytes of a line that spans reads, copied into one buffer as they come and decoded once
 * when the line ends. Held as decoded pieces instead, a long line's pieces outlive the young
 * generation and are copied into fresh old-generation memory (0.8 MiB per MiB of line), then
 * joined into a string of the line's size: with the one decode, the line costs its string alone.
 * Memory never touched costs 2.5 to 3.5 ms per MiB on the benchmark's machine, against almost
 * nothing for memory in use; so one buffer is shared by every reader (a reader that finds it in
 * use gets its own, dropped after its line).
 */
class Assembly {
  /** The buffer lent to one line at a time; undefined while lent. */
  static #spare: Uint8Array<ArrayBuffer> | undefined = new Uint8Array(0);

  #buffer: Uint8Array<ArrayBuffer>;
  #lent: boolean;
  #length = 0;

  constructor() {
    this.#lent = Assembly.#spare !== undefined;
    this.#buffer = Assembly.#spare ?? new Uint8Array(0);
    Assembly.#spare = undefined;
  }

  append(bytes: Uint8Array): void {
    const length = this.#length + bytes.length;
    if (length > this.#buffer.length) {
      const grown = new Uint8Array(Math.max(length, this.#buffer.length * 2, 4096));
      grown.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = grown;
    }
    this.#buffer.set(bytes, this.#length);
    this.#length = length;
  }

  get length(): number {
    return this.#length;
  }

  /** The line's bytes so far, valid until the next append or drop. */
  bytes(): Uint8Array<ArrayBuffer> {
    return this.#buffer.subarray(0, this.#length);
  }

  /** The line's text, decoded at once; the buffer is given back. */
  finish(decoder: TextDecoder): string {
    const text = decoder.decode(this.#buffer.subarray(0, this.#length));
    this.drop();
    return text;
  }

  /** Gives the buffer back (kept for the next line while at most ASSEMBLY_KEEP). */
  drop(): void {
    if (!this.#lent) return;
    this.#lent = false;
    Assembly.#spare = this.#buffer.length <= ASSEMBLY_KEEP ? this.#buffer : new Uint8Array(0);
  }
}

/** The largest shared assembly buffer kept for the next long line. */
const ASSEMBLY_KEEP = 4 * 1024 * 1024;

/**
 * Reads `source` to its end, calling `onLine` for every complete line (without its line break).
 * A final line without a trailing newline is delivered too. Resolves when the source ends.
 * Reads go into one buffer of at most `readSize` bytes, reused (a byte stream, like a child's
 * pipes, is read in BYOB mode): no new buffer per read for every message. Each read is decoded
 * to find its line ends in text (a string's indexOf is native; a Uint8Array's is a loop); a line
 * spanning reads is put together from its bytes (see Assembly). Such a line of `onLarge.large`
 * bytes or more (above `readSize`, so every one) goes to `onLarge.take` first, as bytes valid
 * during the call: when it takes the line (true), no text of it is made.
 */
export async function pumpLines(
  source: ReadableStream<Uint8Array> | ByteReader,
  onLine: (line: string) => void,
  readSize = READ_SIZE,
  onLarge?: { large: number; take: (bytes: Uint8Array<ArrayBuffer>) => boolean },
): Promise<void> {
  const decoder = new TextDecoder();
  const whole = new TextDecoder("utf-8", { ignoreBOM: true });
  let held: Assembly | undefined;
  /** No line delivered yet: a line put together now starts at the stream's first byte. */
  let first = true;
  /** The line `assembly` holds, as text, or undefined when onLarge took its bytes. */
  const finish = (assembly: Assembly) => {
    if (onLarge && assembly.length >= onLarge.large && onLarge.take(assembly.bytes())) {
      assembly.drop();
      first = false;
      return undefined;
    }
    const line = assembly.finish(whole);
    // A byte order mark is dropped at the stream's start only (as the stream's decoder does).
    return first && line.charCodeAt(0) === 0xfeff ? line.slice(1) : line;
  };
  const deliver = (line: string) => {
    first = false;
    onLine(line.endsWith("\r") ? line.slice(0, -1) : line);
  };
  const take = (bytes: Uint8Array) => {
    const text = decoder.decode(bytes, { stream: true });
    let start = 0;
    let newline = text.indexOf("\n");
    if (newline === -1) {
      (held ??= new Assembly()).append(bytes);
      return;
    }
    if (held) {
      // A newline character is a newline byte, never part of another character's bytes.
      held.append(bytes.subarray(0, bytes.indexOf(10)));
      const line = finish(held);
      held = undefined;
      if (line !== undefined) deliver(line);
      start = newline + 1;
      newline = text.indexOf("\n", start);
    }
    while (newline !== -1) {
      deliver(text.slice(start, newline));
      start = newline + 1;
      newline = text.indexOf("\n", start);
    }
    // The bytes after the last newline (with any character the decoder holds back) start the
    // next line.
    const rest = bytes.lastIndexOf(10) + 1;
    if (rest < bytes.length) (held = new Assembly()).append(bytes.subarray(rest));
  };
  try {
    if (source instanceof ReadableStream) {
      const chunks = chunkReader(source, Math.min(FIRST_READ, readSize), readSize);
      try {
        for (let chunk = await chunks.read(); chunk; chunk = await chunks.read()) take(chunk);
      } finally {
        chunks.release();
      }
    } else {
      // One buffer for every read: what is kept of it is decoded or copied.
      const buffer = new Uint8Array(readSize);
      for (let n = await source.read(buffer); n !== null; n = await source.read(buffer)) {
        take(buffer.subarray(0, n));
      }
    }
  } catch (error) {
    held?.drop();
    throw error;
  }
  if (held) {
    const tail = finish(held);
    if (tail) deliver(tail);
  }
}

/** Chunks of a stream, each valid until the next read. */
export interface ChunkReader {
  /** The next chunk, or undefined at the end. */
  read(): Promise<Uint8Array | undefined>;
  cancel(): Promise<void>;
  release(): void;
}

/**
 * Reads `source` in chunks. A byte stream (a child's pipe, a fetch body) is read into one buffer
 * of our own, moved with each chunk and reused: no new 64 KiB buffer for every read, nor held by
 * every idle stream while it waits. The buffer starts at `first` bytes; a read that fills it
 * doubles it for the next one, up to `max` (a large message then arrives in fewer reads).
 */
export function chunkReader(
  source: ReadableStream<Uint8Array>,
  first: number,
  max: number,
): ChunkReader {
  let byob: ReadableStreamBYOBReader;
  try {
    byob = source.getReader({ mode: "byob" });
  } catch {
    const reader = source.getReader();
    return {
      read: async () => (await reader.read()).value,
      cancel: () => reader.cancel(),
      release: () => reader.releaseLock(),
    };
  }
  let buffer = new ArrayBuffer(first);
  return {
    async read() {
      const chunk = await byob.read(new Uint8Array(buffer));
      if (chunk.done) return undefined;
      buffer = chunk.value.buffer;
      if (chunk.value.byteLength === buffer.byteLength && buffer.byteLength < max) {
        // The chunk stays valid: the next read gets a new, larger buffer.
        buffer = new ArrayBuffer(Math.min(buffer.byteLength * 2, max));
      }
      return chunk.value;
    },
    cancel: () => byob.cancel(),
    release: () => byob.releaseLock(),
  };
}
