// serve's Streamable HTTP resumability, black box: a client whose POST stream drops mid-call
// reconnects with GET + Last-Event-ID and gets the rest from the session's bounded event store.

import assert from "node:assert/strict";
import { DEFAULT_EVENT_LIMITS } from "../src/downstream/event_store.ts";
import { fixtureCommand, startServe } from "./support/cli.ts";
import { textOf } from "./support/client.ts";
import { Client, StreamableHTTPClientTransport } from "./support/sdk.ts";
import { messageOf, parseSse, type SseEvent } from "./support/sse.ts";
import { health, waitFor } from "./support/wait.ts";

const everything = fixtureCommand("everything_stdio.ts");
const PROTOCOL = "2025-11-25";
const POST_HEADERS = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
};
const PROGRESS_RESULT = "Tool with progress executed successfully";

type Message = Record<string, unknown>;

/** Reads an SSE body in the background, keeping every event, until the stream ends. */
class Collector {
  readonly events: SseEvent[] = [];
  readonly done: Promise<void>;
  #waiters: Array<{ test: (event: SseEvent) => boolean; resolve: () => void }> = [];

  constructor(body: ReadableStream<Uint8Array>) {
    this.done = (async () => {
      for await (const event of parseSse(body)) {
        this.events.push(event);
        for (const waiter of [...this.#waiters]) {
          if (!waiter.test(event)) continue;
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          waiter.resolve();
        }
      }
    })();
  }

  /** The JSON-RPC messages received so far (priming events, which carry none, left out). */
  get messages(): Message[] {
    return this.events.map(messageOf).filter((message) => message !== undefined);
  }

  /** Resolves once an event passing `test` has arrived; rejects if the stream ends first. */
  waitFor(test: (event: SseEvent) => boolean, what: string): Promise<void> {
    if (this.events.some(test)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#waiters.push({ test, resolve });
      this.done.then(
        () => reject(new Error(`the stream ended before ${what}: ${JSON.stringify(this.events)}`)),
        reject,
      );
    });
  }
}

/** A Streamable HTTP session driven by hand with fetch. */
class RawSession {
  readonly url: URL;
  readonly id: string;

  private constructor(url: URL, id: string) {
    this.url = url;
    this.id = id;
  }

  /** initialize (reading its answer to the result), then notifications/initialized. */
  static async open(url: URL): Promise<RawSession> {
    const response = await fetch(url, {
      method: "POST",
      headers: POST_HEADERS,
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: {
          protocolVersion: PROTOCOL,
          capabilities: {},
          clientInfo: { name: "t", version: "1" },
        },
      }),
    });
    assert.equal(response.status, 200);
    const id = response.headers.get("mcp-session-id");
    assert.ok(id, "initialize answers with Mcp-Session-Id");
    const answer = new Collector(response.body!);
    await answer.done;
    const result = answer.messages.find((message) => message.id === 1);
    assert.equal((result?.result as { protocolVersion?: string }).protocolVersion, PROTOCOL);
    const session = new RawSession(url, id);
    const initialized = await session.post({ jsonrpc: "2.0", method: "notifications/initialized" });
    await initialized.body?.cancel();
    assert.equal(initialized.status, 202);
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

  /**
   * Calls a tool and reads its answer to the end (an event stream, or JSON when it came quickly
   * and alone); returns every message on it.
   */
  async call(id: string, name: string, args: Message = {}, meta?: Message): Promise<Message[]> {
    const response = await this.post({
      jsonrpc: "2.0",
      id,
      method: "tools/call",
      params: { name, arguments: args, ...(meta ? { _meta: meta } : {}) },
    });
    assert.equal(response.status, 200);
    assert.match(
      response.headers.get("content-type") ?? "",
      /^(text\/event-stream|application\/json)/,
    );
    const answer = new Collector(response.body!);
    await answer.done;
    return answer.messages;
  }

  /** Still alive: a fresh tool call on a new POST is answered. */
  async assertWorks(id: string): Promise<void> {
    const messages = await this.call(id, "test_simple_text");
    assert.equal(messages.length, 1);
    assert.equal(textOf(messages[0]!.result), "This is a simple text response for testing.");
  }

  /**
   * GET with Last-Event-ID. Sent the moment the POST stream was dropped, before the proxy can have
   * noticed: the resume must replace the stale stream, not be refused with 409.
   */
  resume(lastEventId: string, signal?: AbortSignal): Promise<Response> {
    return fetch(this.url, {
      headers: { ...this.headers({ "last-event-id": lastEventId }), accept: "text/event-stream" },
      signal,
    });
  }

  async delete(): Promise<void> {
    const response = await fetch(this.url, { method: "DELETE", headers: this.headers() });
    await response.body?.cancel();
    assert.equal(response.status, 200);
  }
}

function isResult(id: string) {
  return (event: SseEvent) => messageOf(event)?.id === id;
}

function progressOf(message: Message): number | undefined {
  if (message.method !== "notifications/progress") return undefined;
  return (message.params as { progress: number }).progress;
}

/** Calls test_tool_with_progress and drops the POST stream once `cutAfter` has been read. */
async function callThenDrop(
  session: RawSession,
  id: string,
  token: string,
  cutAfter: (event: SseEvent) => boolean,
): Promise<SseEvent[]> {
  const abort = new AbortController();
  const response = await session.post({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: { name: "test_tool_with_progress", arguments: {}, _meta: { progressToken: token } },
  }, abort.signal);
  assert.equal(response.status, 200);
  const seen: SseEvent[] = [];
  for await (const event of parseSse(response.body!)) {
    seen.push(event);
    if (cutAfter(event)) break;
  }
  abort.abort();
  // Protocol 2025-11-25 with an event store: the stream opens with a priming event, an id and no
  // data, so the client holds a cursor before anything else arrives.
  assert.ok(seen[0]?.id, `the first event has an id: ${JSON.stringify(seen)}`);
  assert.equal(seen[0]?.data, "");
  assert.ok(seen.at(-1)?.id, "the event the client stopped at has an id");
  return seen;
}

/** Checks a resumed stream: the progress it still owed, then the result, each once, in order. */
function assertRest(
  resumed: Collector,
  before: readonly SseEvent[],
  id: string,
  token: string,
  owed: readonly number[],
): void {
  const events = resumed.events;
  const messages = events.map(messageOf);
  assert.ok(messages.every((message) => message !== undefined), "no data-less events replayed");
  const ids = events.map((event) => event.id);
  assert.ok(ids.every((eventId) => typeof eventId === "string" && eventId !== ""), "all have ids");
  assert.equal(new Set(ids).size, ids.length, `no event twice: ${ids}`);
  const earlier = new Set(before.map((event) => event.id));
  assert.ok(ids.every((eventId) => !earlier.has(eventId)), "nothing up to the given id again");
  const progress = messages.map((message) => progressOf(message!));
  assert.deepEqual(progress, [...owed.map((value) => value), undefined], JSON.stringify(messages));
  for (const message of messages.slice(0, -1)) {
    assert.equal((message!.params as { progressToken: string }).progressToken, token);
  }
  const last = messages.at(-1)!;
  assert.equal(last.id, id);
  assert.equal(textOf(last.result), PROGRESS_RESULT);
}

Deno.test("serve: a dropped POST stream resumes with Last-Event-ID, exactly once, in order", async (t) => {
  await using proxy = await startServe([], everything);
  const session = await RawSession.open(proxy.mcpUrl);

  const cases: Array<[string, (event: SseEvent) => boolean, number[]]> = [
    ["dropped right after the priming event", (event) => event.id !== undefined, [0, 50, 100]],
    [
      "dropped after the first progress notification",
      (event) => progressOf(messageOf(event) ?? {}) === 0,
      [50, 100],
    ],
  ];
  let n = 0;
  for (const [name, cutAfter, owed] of cases) {
    await t.step(name, async () => {
      const id = `call-${++n}`;
      const token = `token-${n}`;
      const before = await callThenDrop(session, id, token, cutAfter);
      const seenProgress = before.map((event) => progressOf(messageOf(event) ?? {}));
      assert.ok(!seenProgress.includes(owed[0]), "the cut came before what is still owed");

      const abort = new AbortController();
      const response = await session.resume(before.at(-1)!.id!, abort.signal);
      assert.equal(response.status, 200, await responseText(response));
      assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
      assert.equal(response.headers.get("mcp-session-id"), session.id);
      const resumed = new Collector(response.body!);
      await resumed.waitFor(isResult(id), "the result");
      assertRest(resumed, before, id, token, owed);

      // The session is unharmed and the events stay replayable: a second resume from the
      // priming event gets the whole call again, under the same ids.
      await session.assertWorks(`${id}-after`);
      abort.abort();
      await resumed.done.catch(() => {});
      const stopReplay = new AbortController();
      const again = await session.resume(before[0]!.id!, stopReplay.signal);
      assert.equal(again.status, 200, await responseText(again));
      const replay = new Collector(again.body!);
      await replay.waitFor(isResult(id), "the replayed result");
      assertRest(replay, before.slice(0, 1), id, token, [0, 50, 100]);
      const replayedIds = replay.events.map((event) => event.id);
      const resumedIds = resumed.events.map((event) => event.id);
      assert.deepEqual(replayedIds.slice(-resumedIds.length), resumedIds);
      // A replay of a finished call stays open (the proxy has nothing to end it on): drop it.
      stopReplay.abort();
      await replay.done.catch(() => {});
    });
  }

  // Nothing arrived later either: once the session ends every stream ends, and counting again
  // over a stream resumed and left open until then shows each message exactly once.
  const before = await callThenDrop(session, "call-last", "token-last", (e) => e.id !== undefined);
  const response = await session.resume(before.at(-1)!.id!);
  assert.equal(response.status, 200);
  const resumed = new Collector(response.body!);
  await resumed.waitFor(isResult("call-last"), "the result");
  await session.assertWorks("after-last");
  await session.delete();
  await resumed.done;
  assertRest(resumed, before, "call-last", "token-last", [0, 50, 100]);
});

Deno.test("serve: a Last-Event-ID from another session or an unknown stream harms nothing", async () => {
  await using proxy = await startServe([], everything);
  const a = await RawSession.open(proxy.mcpUrl);
  const b = await RawSession.open(proxy.mcpUrl);

  // A real event id, but from session A's event store.
  const aCall = await a.post({
    jsonrpc: "2.0",
    id: "a-1",
    method: "tools/call",
    params: { name: "test_tool_with_progress", arguments: {}, _meta: { progressToken: "a" } },
  });
  const aEvents = new Collector(aCall.body!);
  await aEvents.done;
  assert.equal(aEvents.messages.length, 4);
  const foreignId = aEvents.events.find((event) => messageOf(event)?.method)?.id;
  assert.ok(foreignId);

  const ids = [foreignId, "no-such-stream:1", "garbage", ":", "x:-1", "x:1.5", "x:NaN", "\u00e9:1"];
  for (const [i, lastEventId] of ids.entries()) {
    const response = await fetch(proxy.mcpUrl, {
      headers: { ...b.headers({ "last-event-id": lastEventId }), accept: "text/event-stream" },
    });
    // Nothing of A's, and no stream left open on an id this session never issued.
    assert.equal(response.status, 400, `${lastEventId}: HTTP ${response.status}`);
    assert.equal((await response.json()).error.code, -32000);
    await b.assertWorks(`b-${i}`);
  }
  await a.assertWorks("a-3");

  // An unknown session is still 404, Last-Event-ID or not.
  const unknown = await fetch(proxy.mcpUrl, {
    headers: {
      ...b.headers({ "mcp-session-id": crypto.randomUUID(), "last-event-id": foreignId }),
      accept: "text/event-stream",
    },
  });
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json()).error.code, -32001);

  await b.delete();
  await a.assertWorks("a-4");
  // B's session ends asynchronously after DELETE (its child is stopped first).
  await waitFor(async () => {
    const state = await health(proxy.url);
    return state.sessions.streamable === 1 && state.children === 1;
  });
  await a.delete();
});

/** Calls test_tool_with_progress to the end; returns the priming event's id. */
async function callToEnd(session: RawSession, id: string, token: string): Promise<string> {
  const response = await session.post({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: { name: "test_tool_with_progress", arguments: {}, _meta: { progressToken: token } },
  });
  assert.equal(response.status, 200);
  const answer = new Collector(response.body!);
  await answer.done;
  assert.deepEqual(answer.messages.map(progressOf), [0, 50, 100, undefined]);
  assert.equal(answer.events[0]?.data, "");
  return answer.events[0]!.id!;
}

/** A resume from a stream whose events were all dropped is refused with 400, saying why. */
async function assertDropped(session: RawSession, lastEventId: string): Promise<void> {
  const response = await session.resume(lastEventId);
  assert.equal(response.status, 400);
  const body = await response.json();
  assert.equal(body.error.code, -32000);
  assert.match(body.error.message, /names no stream of this session whose events are still held/);
}

/** Resumes from each id, ends the session, and returns what each resumed stream carried. */
async function replaysUntilEnd(session: RawSession, ids: readonly string[]): Promise<Message[][]> {
  const streams: Collector[] = [];
  for (const id of ids) {
    const response = await session.resume(id);
    assert.equal(response.status, 200, await responseText(response));
    streams.push(new Collector(response.body!));
  }
  await session.delete();
  await Promise.all(streams.map((stream) => stream.done));
  return streams.map((stream) => stream.messages);
}

Deno.test("serve: the event store drops the oldest events beyond its event count", async () => {
  await using proxy = await startServe([], everything);
  const session = await RawSession.open(proxy.mcpUrl);
  const first = await callToEnd(session, "first", "first");
  // A batch of two test_simple_text calls is answered on a stream of three events (priming and
  // two results). (A lone quick call is answered as JSON, which stores nothing.)
  const batches = Math.ceil(DEFAULT_EVENT_LIMITS.maxEvents / 3);
  for (let i = 0; i < batches; i += 25) {
    await Promise.all(Array.from({ length: 25 }, async (_, j) => {
      const filler = (k: number) => ({
        jsonrpc: "2.0",
        id: `filler-${i + j}-${k}`,
        method: "tools/call",
        params: { name: "test_simple_text", arguments: {} },
      });
      const response = await session.post([filler(1), filler(2)]);
      assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
      const answer = new Collector(response.body!);
      await answer.done;
      assert.equal(answer.events.length, 3);
    }));
  }
  const last = await callToEnd(session, "last", "last");
  await assertDropped(session, first);
  const [fromLast] = await replaysUntilEnd(session, [last]);
  assert.deepEqual(fromLast!.map(progressOf), [0, 50, 100, undefined], "recent ones are held");
});

Deno.test("serve: the event store drops the oldest events beyond its byte bound", async () => {
  await using proxy = await startServe([], everything);
  const session = await RawSession.open(proxy.mcpUrl);
  // The progress token is echoed in every progress notification: a 1 MB token makes each call
  // store about 3 MB of notifications and a small result. Twice the byte bound in all.
  const tokenBytes = 1_000_000;
  const calls = Math.ceil((2 * DEFAULT_EVENT_LIMITS.maxBytes) / (3 * tokenBytes));
  const primings: string[] = [];
  for (let i = 0; i < calls; i++) {
    primings.push(await callToEnd(session, `big-${i}`, `${i}:${"x".repeat(tokenBytes)}`));
  }
  await assertDropped(session, primings[0]!);
  const [fromLast] = await replaysUntilEnd(session, [primings.at(-1)!]);
  assert.deepEqual(fromLast!.map(progressOf), [0, 50, 100, undefined], "recent ones are held");
});

Deno.test("serve: the SDK client's own reconnection resumes a dropped call", async () => {
  await using proxy = await startServe([], everything);
  const resumedWith: string[] = [];
  let cut: (() => void) | undefined;
  /** A fetch whose tool-call response streams can be cut, as a network drop would. */
  const droppingFetch = async (input: string | URL | Request, init?: RequestInit) => {
    const response = await fetch(input, init);
    const headers = new Headers(init?.headers);
    const lastEventId = headers.get("last-event-id");
    if (init?.method === "GET" && lastEventId) resumedWith.push(lastEventId);
    const body = typeof init?.body === "string" ? init.body : "";
    if (init?.method !== "POST" || !body.includes("test_tool_with_progress") || !response.body) {
      return response;
    }
    const reader = response.body.getReader();
    let dropped = false;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        cut = () => {
          dropped = true;
          controller.error(new TypeError("connection reset (simulated)"));
          reader.cancel().catch(() => {});
        };
      },
      async pull(controller) {
        const { value, done } = await reader.read();
        if (dropped) return;
        if (done) controller.close();
        else controller.enqueue(value);
      },
      cancel: (reason) => reader.cancel(reason),
    });
    return new Response(stream, { status: response.status, headers: response.headers });
  };

  const client = new Client({ name: "mcp-proxy-test", version: "1.0.0" }, { capabilities: {} });
  const transport = new StreamableHTTPClientTransport(proxy.mcpUrl, {
    fetch: droppingFetch,
    reconnectionOptions: {
      initialReconnectionDelay: 20,
      maxReconnectionDelay: 200,
      reconnectionDelayGrowFactor: 2,
      maxRetries: 10,
    },
  });
  await client.connect(transport);
  try {
    const progress: number[] = [];
    const result = await client.callTool(
      { name: "test_tool_with_progress", arguments: {} },
      undefined,
      {
        onprogress: (p) => {
          progress.push(p.progress);
          // The client has taken in the first progress (and its event id): now drop the stream.
          if (progress.length === 1) cut?.();
        },
      },
    );
    assert.equal(textOf(result), PROGRESS_RESULT);
    assert.deepEqual(progress, [0, 50, 100]);
    assert.ok(resumedWith.length >= 1, "the client reconnected with Last-Event-ID");
    const simple = await client.callTool({ name: "test_simple_text", arguments: {} });
    assert.equal(textOf(simple), "This is a simple text response for testing.");
  } finally {
    await transport.terminateSession().catch(() => {});
    await client.close();
  }
});

async function responseText(response: Response): Promise<string> {
  if (response.status === 200) return "";
  return `HTTP ${response.status}: ${await response.clone().text()}`;
}
