// Splits a byte stream into text lines (LF or CRLF) for stdio framing and stderr relays, without
// a per-line promise: a multi-megabyte line arriving in many chunks is joined once.

/**
 * Reads `stream` to its end, calling `onLine` for every complete line (without its line break).
 * A final line without a trailing newline is delivered too. Resolves when the stream ends.
 */
export async function pumpLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let pending: string[] = [];
  const deliver = (line: string) => onLine(line.endsWith("\r") ? line.slice(0, -1) : line);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const text = decoder.decode(value, { stream: true });
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
    }
    const tail = pending.join("") + decoder.decode();
    if (tail.length > 0) deliver(tail);
  } finally {
    reader.releaseLock();
  }
}
