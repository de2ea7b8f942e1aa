// A small Server-Sent Events parser for tests that read Streamable HTTP responses by hand: yields
// each event (a block ended by a blank line that has at least one field; comments are skipped).
// A POST may also be answered with one JSON body (serve does so for a quick, lone request): such
// a body, known by its first character, yields one event per message, without ids.

export interface SseEvent {
  /** The `id` field of this event, if it had one (not the sticky last-event-id). */
  id?: string;
  /** The `event` field; undefined means the default type, "message". */
  event?: string;
  /** The data lines joined with "\n"; "" for an event like the priming one (`data: `). */
  data: string;
  /** The `retry` field in milliseconds, if present and numeric. */
  retry?: number;
}

/** One event of type message carrying `message`, as a server writes it on an event stream. */
export function messageEvent(message: unknown): Uint8Array {
  return new TextEncoder().encode(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
}

/** Parses `body` as text/event-stream; ends when the stream ends (or is cancelled). */
export async function* parseSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let current: { id?: string; event?: string; data?: string[]; retry?: number } = {};
  let fields = 0;
  let first = true;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      if (first && /^\s*[[{]/.test(buffer)) {
        for (let more = await reader.read(); !more.done; more = await reader.read()) {
          buffer += more.value;
        }
        const body = JSON.parse(buffer) as unknown;
        for (const message of Array.isArray(body) ? body : [body]) {
          yield { data: JSON.stringify(message) };
        }
        return;
      }
      first = buffer.length === 0;
      for (;;) {
        const end = buffer.search(/\r\n|\r|\n/);
        // A lone "\r" at the end of the buffer may be the first half of "\r\n": wait for more.
        if (end === -1 || (buffer[end] === "\r" && end === buffer.length - 1)) break;
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
        if (line === "") {
          if (fields > 0) {
            const event: SseEvent = { data: (current.data ?? []).join("\n") };
            if (current.id !== undefined) event.id = current.id;
            if (current.event !== undefined) event.event = current.event;
            if (current.retry !== undefined) event.retry = current.retry;
            yield event;
          }
          current = {};
          fields = 0;
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const name = colon === -1 ? line : line.slice(0, colon);
        let text = colon === -1 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        fields++;
        if (name === "data") (current.data ??= []).push(text);
        else if (name === "id") current.id = text;
        else if (name === "event") current.event = text;
        else if (name === "retry" && /^\d+$/.test(text)) current.retry = Number(text);
        else fields--;
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/** The JSON-RPC message an SSE event carries, or undefined for a data-less one (priming). */
export function messageOf(event: SseEvent): Record<string, unknown> | undefined {
  return event.data === "" ? undefined : JSON.parse(event.data);
}

/** Reads events one at a time from a response, each within a deadline (a lost event fails). */
export class EventReader {
  #events: AsyncGenerator<SseEvent>;

  constructor(response: Response) {
    if (!response.body) throw new Error("an event stream has a body");
    this.#events = parseSse(response.body);
  }

  /** The next event; rejects if the stream ends or none arrives within `timeoutMs`. */
  async next(timeoutMs = 10_000): Promise<SseEvent> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no event within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const { value, done } = await Promise.race([this.#events.next(), timeout]);
      if (done) throw new Error("the event stream ended");
      return value;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops reading and drops the connection. */
  async cancel(): Promise<void> {
    await this.#events.return(undefined);
  }
}
