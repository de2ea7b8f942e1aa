// Splits a byte stream into text lines (LF or CRLF) for stdio framing and stderr relays, without
// a per-line promise: a multi-megabyte line arriving in many chunks is joined once.

/** Something read into a buffer, like Deno.stdin: fewer layers than its ReadableStream. */
export interface ByteReader {
  read(buffer: Uint8Array): Promise<number | null>;
}

const READ_SIZE = 64 * 1024;

/**
 * Reads `source` to its end, calling `onLine` for every complete line (without its line break).
 * A final line without a trailing newline is delivered too. Resolves when the source ends.
 * Reads go into one buffer of `readSize` bytes, reused (a byte stream, like a child's pipes, is
 * read in BYOB mode): no new buffer per read for every message.
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
    const byob = byobReader(source);
    if (byob) {
      // The buffer comes back with each chunk (moved, not copied); the decoder copies what it takes.
      let buffer = new ArrayBuffer(readSize);
      try {
        for (;;) {
          const chunk = await byob.read(new Uint8Array(buffer));
          if (chunk.done) break;
          take(chunk.value);
          buffer = chunk.value.buffer;
        }
      } finally {
        byob.releaseLock();
      }
    } else {
      const reader = source.getReader();
      try {
        for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
          take(chunk.value);
        }
      } finally {
        reader.releaseLock();
      }
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

/** A BYOB reader of `source` when it is a byte stream; undefined for other streams. */
function byobReader(source: ReadableStream<Uint8Array>): ReadableStreamBYOBReader | undefined {
  try {
    return source.getReader({ mode: "byob" });
  } catch {
    return undefined;
  }
}
