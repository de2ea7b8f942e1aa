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
 * (already UTF-8) goes as it is, between its framing's.
 */
export function framed(head: string, body: string | Uint8Array, tail: string): Uint8Array[] {
  if (typeof body === "string" && body.length < SPLIT_MIN) {
    return [encoder.encode(head + body + tail)];
  }
  const chunks = [typeof body === "string" ? encoder.encode(body) : body];
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
 * Reads `source` to its end, calling `onLine` for every complete line (without its line break).
 * A final line without a trailing newline is delivered too. Resolves when the source ends.
 * Reads go into one buffer of at most `readSize` bytes, reused (a byte stream, like a child's
 * pipes, is read in BYOB mode): no new buffer per read for every message.
 */
export async function pumpLines(
  source: ReadableStream<Uint8Array> | ByteReader,
  onLine: (line: string) => void,
  readSize = READ_SIZE,
): Promise<void> {
  const decoder = new TextDecoder();
  let pending: string[] = [];
  const deliver = (line: string) => onLine(line.endsWith("\r") ? line.slice(0, -1) : line);
  const take = (bytes: Uint8Array) => {
    const text = decoder.decode(bytes, { stream: true });
    let start = 0;
    let newline = text.indexOf("\n");
    while (newline !== -1) {
      const piece = text.slice(start, newline);
      if (pending.length > 0) {
        pending.push(piece);
        deliver(pending.join(""));
        pending = [];
      } else {
        deliver(piece);
      }
      start = newline + 1;
      newline = text.indexOf("\n", start);
    }
    if (start < text.length) pending.push(text.slice(start));
  };
  if (source instanceof ReadableStream) {
    const chunks = chunkReader(source, Math.min(FIRST_READ, readSize), readSize);
    try {
      for (let chunk = await chunks.read(); chunk; chunk = await chunks.read()) take(chunk);
    } finally {
      chunks.release();
    }
  } else {
    // One buffer for every read: the decoder copies what it takes.
    const buffer = new Uint8Array(readSize);
    for (let n = await source.read(buffer); n !== null; n = await source.read(buffer)) {
      take(buffer.subarray(0, n));
    }
  }
  const tail = pending.join("") + decoder.decode();
  if (tail.length > 0) deliver(tail);
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
