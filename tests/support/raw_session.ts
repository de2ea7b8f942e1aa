// A Streamable HTTP session driven by hand with fetch, for faults an SDK client would hide or
// retry: unanswered initializes, dropped POST streams, readers that stop reading, raw answers.

import { messageOf, parseSse, type SseEvent } from "./sse.ts";

export const PROTOCOL = "2025-11-25";
export const POST_HEADERS = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
};

export type Message = Record<string, unknown>;

export const INITIALIZE: Message = {
  jsonrpc: "2.0",
  id: "init",
  method: "initialize",
  params: {
    protocolVersion: PROTOCOL,
    capabilities: {},
    clientInfo: { name: "faults", version: "1" },
  },
};

/** POSTs initialize and returns as soon as the headers arrive (the answer may never come). */
export async function postInitialize(
  url: URL,
  signal?: AbortSignal,
): Promise<{ response: Response; sessionId: string }> {
  const response = await fetch(url, {
    method: "POST",
    headers: POST_HEADERS,
    body: JSON.stringify(INITIALIZE),
    signal,
  });
  const sessionId = response.headers.get("mcp-session-id");
  if (response.status !== 200 || !sessionId) {
    throw new Error(`initialize: HTTP ${response.status} ${await response.text()}`);
  }
  return { response, sessionId };
}

/** Every event of an SSE body until it ends; rejects if it is still open after `timeoutMs`. */
export async function readAll(
  body: ReadableStream<Uint8Array>,
  timeoutMs = 10_000,
): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const reading = (async () => {
    for await (const event of parseSse(body)) events.push(event);
  })();
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the stream was still open after ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    await Promise.race([reading, timeout]);
  } finally {
    clearTimeout(timer);
  }
  return events;
}

/** The JSON-RPC messages among `events` (priming events left out). */
export function messagesOf(events: readonly SseEvent[]): Message[] {
  return events.map(messageOf).filter((message) => message !== undefined);
}

/** An initialized session: initialize answered, notifications/initialized sent. */
export class RawSession {
  readonly url: URL;
  readonly id: string;

  private constructor(url: URL, id: string) {
    this.url = url;
    this.id = id;
  }

  static async open(url: URL): Promise<RawSession> {
    const { response, sessionId } = await postInitialize(url);
    const answer = messagesOf(await readAll(response.body!));
    if (!answer.some((message) => message.id === INITIALIZE.id && message.result)) {
      throw new Error(`initialize was not answered: ${JSON.stringify(answer)}`);
    }
    const session = new RawSession(url, sessionId);
    const initialized = await session.post({ jsonrpc: "2.0", method: "notifications/initialized" });
    await initialized.body?.cancel();
    if (initialized.status !== 202) throw new Error(`initialized: HTTP ${initialized.status}`);
    return session;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return {
      ...POST_HEADERS,
      "mcp-session-id": this.id,
      "mcp-protocol-version": PROTOCOL,
      ...extra,
    };
  }

  post(message: Message | Message[], signal?: AbortSignal): Promise<Response> {
    return fetch(this.url, {
      method: "POST",
      headers: this.headers(),
      body: JSON.stringify(message),
      signal,
    });
  }

  /** tools/call as a message (with a progress token when given). */
  static call(id: string, name: string, args: Message = {}, progressToken?: string): Message {
    return {
      jsonrpc: "2.0",
      id,
      method: "tools/call",
      params: {
        name,
        arguments: args,
        ...(progressToken === undefined ? {} : { _meta: { progressToken } }),
      },
    };
  }

  /** GET with Last-Event-ID: the rest of a stream the client lost. */
  resume(lastEventId: string, signal?: AbortSignal): Promise<Response> {
    return fetch(this.url, {
      headers: { ...this.headers({ "last-event-id": lastEventId }), accept: "text/event-stream" },
      signal,
    });
  }

  async delete(): Promise<number> {
    const response = await fetch(this.url, { method: "DELETE", headers: this.headers() });
    await response.body?.cancel();
    return response.status;
  }
}
