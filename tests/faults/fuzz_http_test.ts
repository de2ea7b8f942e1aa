// serve's HTTP body parser under fuzzing: malformed and mutated JSON-RPC POSTed to /mcp (in a
// session and without one) and to the legacy /message endpoint of a real `mcp-proxy serve`. Each
// answer must be what the specs and the README name (413; 400 with -32700 or -32600; 202; 200 with
// one answer per request, forwarded untouched), never a 500 or a hang; afterwards it serves as before.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { fixtureCommand, type ServeProcess, startServe } from "../support/cli.ts";
import { report, rssMb } from "../support/report.ts";
import { connectHttp, initializeJson, textOf } from "../support/client.ts";
import {
  type BodyVerdict,
  type Bytes,
  FuzzReport,
  fuzzSettings,
  generate,
  type Id,
  idKey,
  judgeBody,
  Rng,
  show,
  Waiter,
} from "../support/fuzz.ts";

const MAX_BODY = 256 * 1024;
const PROTOCOL = "2025-11-25";
const UPSTREAM = [
  Deno.execPath(),
  "run",
  "--no-prompt",
  "--quiet",
  fileURLToPath(new URL("../support/fuzz_upstream.ts", import.meta.url)),
];
const POST_HEADERS = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
};
const METHODS = ["ping", "fuzz/echo", "fuzz/other", "tools/list"];
const encoder = new TextEncoder();
type Message = Record<string, unknown>;

/** Where a body is POSTed: a session's /mcp, /mcp without a session, or an SSE session's /message. */
type Context = "session" | "no-session" | "message";

/** One acceptable answer. */
type Expected =
  | { status: number; code: number }
  | { status: 202; answers?: Map<string, unknown[]> }
  | { status: 200; answers: Map<string, unknown[]> }
  | { status: 200; newSession: true };

/** The items sent with each request id (more than one when a batch repeats an id). */
function requestsOf(verdict: Extract<BodyVerdict, { kind: "ok" }>): Map<string, unknown[]> {
  const answers = new Map<string, unknown[]>();
  verdict.verdicts.forEach((item, i) => {
    if (item.kind !== "request") return;
    const key = idKey(item.id);
    answers.set(key, [...answers.get(key) ?? [], verdict.items[i]]);
  });
  return answers;
}

/** What the transport makes of a well-formed body, in each context (streamable.ts, endpoint.ts). */
function expectationsOf(verdicts: BodyVerdict[], context: Context): Expected[] {
  return verdicts.map((verdict): Expected => {
    if (verdict.kind === "error") return { status: verdict.status, code: verdict.code };
    const answers = requestsOf(verdict);
    const methods = verdict.verdicts.flatMap((v) => v.kind === "request" ? [v.method] : []);
    if (context === "message") return { status: 202, answers };
    if (context === "no-session") {
      const single = !verdict.batch && methods.length === 1 && methods[0] === "initialize";
      return single ? { status: 200, newSession: true } : { status: 400, code: -32000 };
    }
    if (verdict.items.length > 100) return { status: 400, code: -32600 };
    if (methods.includes("initialize")) return { status: 400, code: -32600 };
    return answers.size === 0 ? { status: 202 } : { status: 200, answers };
  });
}

/**
 * Splits complete SSE events off `buffer` (the proxy writes LF line ends): each event's `event`
 * field and its data lines joined. Returns the rest, an incomplete event.
 */
function takeEvents(
  buffer: string,
): { events: Array<{ event?: string; data: string }>; rest: string } {
  const events: Array<{ event?: string; data: string }> = [];
  let end = buffer.indexOf("\n\n");
  while (end !== -1) {
    const lines = buffer.slice(0, end).split("\n");
    buffer = buffer.slice(end + 2);
    end = buffer.indexOf("\n\n");
    const data = lines.filter((l) => l.startsWith("data:")).map((l) =>
      l.slice(5).replace(/^ /, "")
    );
    const event = lines.find((l) => l.startsWith("event:"))?.slice(6).trim();
    if (data.length > 0) events.push({ event, data: data.join("\n") });
  }
  return { events, rest: buffer };
}

/** Collects the messages of an SSE response until it ends, or `timeoutMs` passes. */
async function readStream(
  response: Response,
  timeoutMs: number,
): Promise<{ messages: Message[]; ended: boolean }> {
  const messages: Message[] = [];
  if (/^application\/json/.test(response.headers.get("content-type") ?? "")) {
    // A lone request answered quickly: one JSON body.
    const body = await response.json() as Message | Message[];
    return { messages: Array.isArray(body) ? body : [body], ended: true };
  }
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), timeout]);
      if (next === "timeout") return { messages, ended: false };
      if (next.done) return { messages, ended: true };
      const { events, rest } = takeEvents(buffer + decoder.decode(next.value, { stream: true }));
      buffer = rest;
      for (const { data } of events) if (data.trim() !== "") messages.push(JSON.parse(data));
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
}

/** Checks the answers to requests: one per id, nothing else, and each echo the request as sent. */
function checkAnswers(
  answers: Map<string, unknown[]>,
  messages: Message[],
): string | undefined {
  const seen = new Map<string, number>();
  for (const message of messages) {
    if ("method" in message) continue;
    const key = idKey(message.id as Id);
    seen.set(key, (seen.get(key) ?? 0) + 1);
    const sent = answers.get(key);
    if (!sent) return `an answer to ${key}, which was not asked`;
    const echo = (message.result as { echo?: unknown } | undefined)?.echo;
    if (echo !== undefined && !sent.some((item) => JSON.stringify(item) === JSON.stringify(echo))) {
      return `the request ${key} reached the server changed: ${JSON.stringify(echo).slice(0, 200)}`;
    }
  }
  for (const [key, sent] of answers) {
    const n = seen.get(key) ?? 0;
    if (n < 1) return `no answer to ${key}`;
    if (n > sent.length) return `${n} answers to ${key}`;
  }
  return undefined;
}

/** A legacy SSE session whose stream is read in the background. */
class SseSession implements AsyncDisposable {
  readonly messages: Message[] = [];
  messageUrl!: URL;
  #reader?: ReadableStreamDefaultReader<Uint8Array>;
  #waiter = new Waiter();
  #reading?: Promise<void>;

  async open(base: string): Promise<void> {
    const response = await fetch(`${base}/sse`, { headers: { accept: "text/event-stream" } });
    assert.equal(response.status, 200);
    const reader = this.#reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let endpoint: (url: URL) => void;
    const announced = new Promise<URL>((resolve) => (endpoint = resolve));
    this.#reading = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        const { events, rest } = takeEvents(buffer + decoder.decode(value, { stream: true }));
        buffer = rest;
        for (const { event, data } of events) {
          if (event === "endpoint") endpoint!(new URL(data, base));
          else if (data.trim() !== "") this.messages.push(JSON.parse(data));
        }
        this.#waiter.wake();
      }
    })().catch(() => {});
    const ended = this.#reading.then(() => {
      throw new Error("the SSE stream ended before its endpoint event");
    });
    this.messageUrl = await Promise.race([announced, ended]);
  }

  async until(check: () => boolean, timeoutMs: number): Promise<boolean> {
    return await this.#waiter.until(check, timeoutMs);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#reader?.cancel().catch(() => {});
    await this.#reading;
  }
}

/** Requests the fuzz expected answers to, and those that never got one (for deno task faults). */
const tally = { inputs: 0, requests: 0, lost: 0 };

/** Categories that mean a request got neither an answer nor an error. */
const LOST = /hang|never answered|never ends|no HTTP answer/;

/** POSTs one body and judges the answer; returns a failure [category, detail] or undefined. */
async function postOne(
  url: URL,
  headers: Record<string, string>,
  bytes: Bytes,
  context: Context,
  sse?: SseSession,
): Promise<[string, string] | undefined> {
  const expected = expectationsOf(judgeBody(bytes, MAX_BODY), context);
  tally.inputs++;
  const first = expected[0]!;
  tally.requests += 1 + ("answers" in first ? first.answers?.size ?? 0 : 0);
  const from = sse?.messages.length ?? 0;
  let response: Response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers,
      body: bytes,
      signal: AbortSignal.timeout(15_000),
    });
  } catch (error) {
    return ["no HTTP answer (hang or dropped connection)", `${show(bytes)}: ${error}`];
  }
  const want = expected.map((e) => "code" in e ? `${e.status} ${e.code}` : `${e.status}`);
  const fits = expected.filter((e) => e.status === response.status);
  if (fits.length === 0) {
    await response.body?.cancel();
    const category = response.status >= 500
      ? `HTTP ${response.status}`
      : `HTTP ${response.status} instead of ${[...new Set(want)].join(" or ")}`;
    return [category, `${show(bytes)}: expected ${want.join(" or ")}`];
  }
  if (response.status !== 200 && response.status !== 202) {
    const text = await response.text();
    let body: { jsonrpc?: unknown; id?: unknown; error?: { code?: unknown; message?: unknown } };
    try {
      body = JSON.parse(text);
    } catch {
      return ["an error that is not JSON-RPC", `${show(bytes)}: ${text.slice(0, 200)}`];
    }
    const codes = fits.flatMap((e) => "code" in e ? [e.code] : []);
    if (
      !/^application\/json/.test(response.headers.get("content-type") ?? "") ||
      body.jsonrpc !== "2.0" || body.id !== null || typeof body.error?.message !== "string" ||
      !codes.includes(body.error?.code as number)
    ) {
      return [
        `HTTP ${response.status} with the wrong JSON-RPC error`,
        `${show(bytes)}: expected code ${codes.join(" or ")}, got ${text.slice(0, 200)}`,
      ];
    }
    return undefined;
  }
  if (response.status === 202) {
    await response.body?.cancel();
    const answers = fits.map((e) => "answers" in e ? e.answers : undefined).find(Boolean);
    if (!sse || !answers || answers.size === 0) return undefined;
    const complete = () => checkAnswers(answers, sse.messages.slice(from)) === undefined;
    if (!await sse.until(complete, 15_000)) {
      const why = checkAnswers(answers, sse.messages.slice(from));
      return ["a request never answered on the SSE stream", `${show(bytes)}: ${why}`];
    }
    return undefined;
  }
  // 200: the answers' stream, or a new session.
  const { messages, ended } = await readStream(response, 15_000);
  const session = fits.find((e) => "newSession" in e);
  if (session) {
    const id = response.headers.get("mcp-session-id");
    if (!id) return ["a new session without an id", show(bytes)];
    const gone = await fetch(url, {
      method: "DELETE",
      headers: { "mcp-session-id": id, "mcp-protocol-version": PROTOCOL },
    });
    await gone.body?.cancel();
    return messages.some((m) => "result" in m)
      ? undefined
      : ["initialize not answered", show(bytes)];
  }
  if (!ended) return ["a response stream that never ends (hang)", show(bytes)];
  const answers = fits.map((e) => "answers" in e ? e.answers : undefined).find(Boolean)!;
  const why = checkAnswers(answers, messages);
  return why === undefined ? undefined : ["wrong answers on the stream", `${show(bytes)}: ${why}`];
}

/** Starts a Streamable HTTP session by hand; returns its headers for later POSTs. */
async function openSession(proxy: ServeProcess): Promise<Record<string, string>> {
  const response = await fetch(proxy.mcpUrl, {
    method: "POST",
    headers: POST_HEADERS,
    body: initializeJson(PROTOCOL, 0),
  });
  const id = response.headers.get("mcp-session-id");
  assert.ok(id, "a session id");
  await readStream(response, 10_000);
  const headers = { ...POST_HEADERS, "mcp-session-id": id, "mcp-protocol-version": PROTOCOL };
  const initialized = await fetch(proxy.mcpUrl, {
    method: "POST",
    headers,
    body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
  });
  await initialized.body?.cancel();
  assert.equal(initialized.status, 202);
  return headers;
}

const deep = (n: number) => "[".repeat(n) + "]".repeat(n);

/** Explicit bodies, one per class, POSTed in a session. */
const CLASSES: Array<[string, string | Bytes]> = [
  [
    "params a number: 400 -32600",
    '{"jsonrpc": "2.0", "id": 1, "method": "fuzz/echo", "params": 5}',
  ],
  ["params a string: 400 -32600", '{"jsonrpc": "2.0", "id": 2, "method": "ping", "params": "x"}'],
  ["params null: 400 -32600", '{"jsonrpc": "2.0", "id": 3, "method": "ping", "params": null}'],
  [
    "a notification with params true: 400 -32600",
    '{"jsonrpc": "2.0", "method": "notifications/x", "params": true}',
  ],
  [
    "result and error both: 400 -32600",
    '{"jsonrpc": "2.0", "id": 4, "result": {}, "error": {"code": 1, "message": "x"}}',
  ],
  ["error a string: 400 -32600", '{"jsonrpc": "2.0", "id": 5, "error": "boom"}'],
  ["error without a code: 400 -32600", '{"jsonrpc": "2.0", "id": 6, "error": {"message": "m"}}'],
  ["a result with id null: 400 -32600", '{"jsonrpc": "2.0", "id": null, "result": {}}'],
  ["a batch with one bad item: 400 -32600", '[{"jsonrpc": "2.0", "id": 7, "method": "ping"}, 1]'],
  ["a batch of a batch: 400 -32600", "[[]]"],
  [
    "101 messages in a batch: 400 -32600",
    JSON.stringify(
      Array.from({ length: 101 }, (_, i) => ({ jsonrpc: "2.0", id: `b${i}`, method: "ping" })),
    ),
  ],
  ["100000 nested arrays: 400 -32600", deep(100_000)],
  [
    "params nested 100000 deep: answered, forwarded untouched",
    `{"jsonrpc": "2.0", "id": 8, "method": "fuzz/echo", "params": {"d": ${deep(100_000)}}}`,
  ],
  ["a NUL between tokens: 400 -32700", '{"jsonrpc": "2.0",\u0000 "id": 9, "method": "ping"}'],
  [
    "invalid UTF-8 in a string: served or 400 -32700",
    new Uint8Array([
      ...encoder.encode('{"jsonrpc": "2.0", "id": 10, "method": "fuzz/ech'),
      0xc0,
      0xaf,
      ...encoder.encode('o"}'),
    ]),
  ],
  [
    "a BOM first: served or 400 -32700",
    new Uint8Array([
      0xef,
      0xbb,
      0xbf,
      ...encoder.encode('{"jsonrpc":"2.0","id":11,"method":"ping"}'),
    ]),
  ],
  [
    "odd but valid ids come back as sent",
    JSON.stringify([-0, 1e21, 2 ** 53 + 2, "", "x".repeat(5000)].map((id) => ({
      jsonrpc: "2.0",
      id,
      method: "fuzz/echo",
    }))),
  ],
  [
    "an id with CRLF cannot break the SSE framing",
    JSON.stringify({
      jsonrpc: "2.0",
      id: "a\r\n\r\nevent: message\ndata: {}",
      method: "fuzz/echo",
    }),
  ],
];

Deno.test("serve: every malformed POST body gets the status and JSON-RPC error it calls for (fuzz)", async (t) => {
  const settings = fuzzSettings(300);
  await using proxy = await startServe(["--max-body", "256kb"], UPSTREAM);
  const sessionHeaders = await openSession(proxy);
  const target = { methods: METHODS, initialize: true, maxBytes: MAX_BODY };

  for (const [name, input] of CLASSES) {
    await t.step(name, async () => {
      const bytes = typeof input === "string" ? encoder.encode(input) : input;
      const failure = await postOne(proxy.mcpUrl, sessionHeaders, bytes, "session");
      if (failure) assert.fail(`${failure[0]}: ${failure[1]}`);
    });
  }

  const contexts: Array<[Context, number]> = [
    ["session", settings.runs],
    ["no-session", Math.ceil(settings.runs / 2)],
    ["message", Math.ceil(settings.runs / 2)],
  ];
  for (const [context, runs] of contexts) {
    await t.step(`${runs} random bodies, ${context}, seed ${settings.seed}`, async () => {
      const failures = new FuzzReport(`serve POST (${context})`, settings);
      await using sse = new SseSession();
      let url = proxy.mcpUrl;
      let headers: Record<string, string> = sessionHeaders;
      if (context === "no-session") headers = POST_HEADERS;
      if (context === "message") {
        await sse.open(proxy.url);
        url = sse.messageUrl;
        headers = { "content-type": "application/json" };
      }
      const offset = context === "session" ? 0 : context === "no-session" ? 1_000_000 : 2_000_000;
      for (let i = 0; i < runs; i++) {
        const input = generate(Rng.of(settings.seed, offset + i), target, false);
        const failure = await postOne(url, headers, input.bytes, context, sse);
        if (failure && LOST.test(failure[0])) tally.lost++;
        if (failure) failures.fail(failure[0], `#${i} [${input.label}] ${failure[1]}`);
      }
      failures.check();
    });
  }

  await t.step("afterwards: healthy, the session answers, a new client works", async () => {
    const health = await fetch(`${proxy.url}/health`);
    assert.equal(health.status, 200);
    assert.equal((await health.json()).status, "ok");
    const ping = await fetch(proxy.mcpUrl, {
      method: "POST",
      headers: sessionHeaders,
      body: JSON.stringify({ jsonrpc: "2.0", id: "after", method: "ping" }),
    });
    assert.equal(ping.status, 200);
    const { messages } = await readStream(ping, 10_000);
    assert.deepEqual(messages, [{ jsonrpc: "2.0", id: "after", result: {} }]);
    await using client = await connectHttp(proxy.mcpUrl);
    assert.deepEqual((await client.listTools()).tools.map((tool) => tool.name), ["echo"]);
    assert.equal(textOf(await client.callTool({ name: "echo", arguments: { text: "ok" } })), "ok");
    assert.ok(!/panicked|Uncaught|request failed/.test(proxy.stderrText), proxy.stderrText);
  });
  await report({
    case: `serve POST body fuzz: ${tally.inputs} bodies, seed ${settings.seed}`,
    inputs: tally.inputs,
    requests: tally.requests,
    lost: tally.lost,
    peakRssMb: await rssMb(proxy.process.pid),
  });
});

Deno.test("serve: a malformed request reaching an SDK server is answered, never left hanging", async () => {
  // The SDK's stdio server drops a message its schema refuses (params not an object, an id not an
  // integer, an unknown member), and serve has no --timeout for a child: a request the proxy lets
  // through unanswered pins the POST forever (and keeps the session busy, so it is never reaped).
  await using proxy = await startServe([], fixtureCommand("faulty_stdio.ts"));
  const headers = await openSession(proxy);
  const bodies = [
    '{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": 5}',
    '{"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": []}',
    '{"jsonrpc": "2.0", "id": 3.5, "method": "tools/list"}',
    '{"jsonrpc": "2.0", "id": 4, "method": "tools/list", "extra": true}',
  ];
  const hanging = (await Promise.all(bodies.map(async (body) => {
    const response = await fetch(proxy.mcpUrl, {
      method: "POST",
      headers,
      body,
      signal: AbortSignal.timeout(15_000),
    });
    if (response.status !== 200) {
      await response.body?.cancel();
      return response.status === 400 ? [] : [`${body}: HTTP ${response.status}`];
    }
    const id = JSON.parse(body).id;
    const { messages, ended } = await readStream(response, 3_000);
    return ended && messages.some((m) => m.id === id && ("error" in m || "result" in m))
      ? []
      : [`${body}: forwarded and not answered within 3 s`];
  }))).flat();
  assert.deepEqual(hanging, [], "refuse what the server cannot take (400), or answer it");
});
