// connect's stdio framing under fuzzing: malformed and mutated JSON-RPC frames written to the stdin
// of a real `mcp-proxy connect` in front of the everything server over Streamable HTTP. Each frame
// must get what JSON-RPC says (-32700 with id null for non-JSON, -32600 for a malformed message,
// with its id when one can be recovered, one answer per request, nothing for notifications and
// responses), stdout must carry JSON-RPC only, and afterwards the proxy works and exits 0 at EOF.

import assert from "node:assert/strict";
import { pumpLines } from "../../src/lines.ts";
import { cliCommand } from "../support/cli.ts";
import {
  type Bytes,
  type FrameExpectation,
  FuzzReport,
  fuzzSettings,
  generate,
  type Id,
  idKey,
  judgeFrames,
  Rng,
  show,
  Waiter,
} from "../support/fuzz.ts";
import { startNative } from "../support/native.ts";
import { report, rssMb } from "../support/report.ts";

const encoder = new TextEncoder();
type Message = Record<string, unknown>;

/** `mcp-proxy connect <url>` with its stdin, stdout (JSON-RPC, parsed) and stderr at hand. */
class ConnectProcess implements AsyncDisposable {
  readonly process: Deno.ChildProcess;
  readonly messages: Message[] = [];
  readonly nonJson: string[] = [];
  readonly stderr: string[] = [];
  readonly stdoutDone: Promise<void>;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #waiter = new Waiter();

  constructor(url: string) {
    const [exe, ...prefix] = cliCommand();
    this.process = new Deno.Command(exe!, {
      args: [...prefix, "connect", url],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.process.stdin.getWriter();
    this.stdoutDone = pumpLines(this.process.stdout, (line) => {
      try {
        this.messages.push(JSON.parse(line));
      } catch {
        this.nonJson.push(line);
      }
      this.#waiter.wake();
    }).catch(() => {});
    void pumpLines(this.process.stderr, (line) => void this.stderr.push(line)).catch(() => {});
    this.process.status.then(() => {
      this.#waiter.wake();
    });
  }

  async write(bytes: Uint8Array): Promise<void> {
    await this.#writer.write(bytes);
  }

  async send(message: unknown): Promise<void> {
    await this.write(encoder.encode(JSON.stringify(message) + "\n"));
  }

  /** Waits until `check` holds (re-checked on each stdout line); false at the deadline. */
  async until(check: () => boolean, timeoutMs: number): Promise<boolean> {
    return await this.#waiter.until(check, timeoutMs);
  }

  /** The answer to request `id` sent after message index `from`. */
  answerTo(id: Id, from = 0): Message | undefined {
    return this.messages.slice(from).find((m) => !("method" in m) && m.id === id);
  }

  async closeInput(): Promise<void> {
    await this.#writer.close().catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.closeInput();
    const timer = setTimeout(() => {
      try {
        this.process.kill("SIGKILL");
      } catch {
        // Gone.
      }
    }, 15_000);
    await this.process.status;
    clearTimeout(timer);
    await this.stdoutDone;
  }
}

type Outcome = { state: "ok" | "waiting" | "bad"; detail: string };

/** Compares what came back (after a sentinel's answer) with the acceptable expectations. */
function evaluate(observed: Message[], alternatives: FrameExpectation[]): Outcome {
  const nullErrors = new Map<number, number>();
  const byId = new Map<string, Message[]>();
  for (const message of observed) {
    if ("method" in message) continue; // The server's own requests and notifications.
    const id = message.id as Id | null | undefined;
    if (id === null || id === undefined) {
      const code = (message.error as { code?: number } | undefined)?.code ?? NaN;
      nullErrors.set(code, (nullErrors.get(code) ?? 0) + 1);
    } else {
      const key = idKey(id);
      byId.set(key, [...byId.get(key) ?? [], message]);
    }
  }
  let waiting = false;
  for (const expected of alternatives) {
    const sameNulls = nullErrors.size === expected.nullErrors.size &&
      [...expected.nullErrors].every(([code, n]) => nullErrors.get(code) === n);
    if (!sameNulls) continue;
    let fits = true;
    let complete = true;
    for (const [key, messages] of byId) {
      const owed = expected.ids.get(key);
      const invalidCodes = messages.filter((m) => errorCode(m) === -32600).length;
      if (!owed || messages.length > owed.invalid + owed.requests) fits = false;
      else if (owed.requests === 0 && invalidCodes !== messages.length) fits = false;
    }
    for (const [key, owed] of expected.ids) {
      const messages = byId.get(key) ?? [];
      const invalidCodes = messages.filter((m) => errorCode(m) === -32600).length;
      if (messages.length < owed.invalid + Math.min(1, owed.requests)) complete = false;
      if (invalidCodes < owed.invalid && owed.requests === 0) complete = false;
    }
    if (!fits) continue;
    if (complete) return { state: "ok", detail: "" };
    // Only answers from the server can still come (the proxy's own errors precede the sentinel).
    const proxyOwed = [...expected.ids].every(([key, owed]) =>
      owed.requests > 0 || (byId.get(key) ?? []).length >= owed.invalid
    );
    if (proxyOwed) waiting = true;
  }
  const first = alternatives[0]!;
  const want = [
    ...[...first.nullErrors].map(([code, n]) => `${n}x ${code} id null`),
    ...[...first.ids].map(([key, owed]) =>
      owed.requests > 0 ? `an answer to ${key}` : `-32600 for id ${key}`
    ),
  ].join(", ") || "nothing";
  const got =
    observed.filter((m) => !("method" in m)).map((m) =>
      `${idKey((m.id ?? null) as Id)}:${errorCode(m) ?? "result"}`
    ).join(", ") || "nothing";
  return {
    state: waiting ? "waiting" : "bad",
    detail: `expected ${want} (${first.why.join("; ")}); got ${got}`,
  };
}

function errorCode(message: Message): number | undefined {
  return (message.error as { code?: number } | undefined)?.code;
}

/** A category for grouping failures: what was missing or extra, and why it was expected. */
function categorize(observed: Message[], expected: FrameExpectation): string {
  const whys = [...new Set(expected.why.map((why) => why.replace(/ \d+$/, "")))].join(", ");
  const answers = observed.filter((m) => !("method" in m));
  const gotNull = answers.some((m) => m.id === null);
  const gotId = answers.some((m) => m.id !== null && m.id !== undefined);
  const wantNull = expected.nullErrors.size > 0;
  const wantId = expected.ids.size > 0;
  const what = !gotNull && !gotId && (wantNull || wantId)
    ? "nothing came back"
    : wantId && !gotId
    ? "no error carrying the id"
    : gotId && !wantId
    ? "an unexpected answer"
    : "wrong errors";
  return `${what} for: ${whys}`;
}

let sentinels = 0;

/** Writes `bytes` as one input (plus its newline), then a ping; judges what came back. */
/** Requests the fuzz expected answers to, and those that never got one (for deno task faults). */
const tally = { requests: 0, lost: 0 };

async function runOne(
  proxy: ConnectProcess,
  bytes: Bytes,
): Promise<{ ok: true } | { ok: false; category: string; detail: string; fatal?: boolean }> {
  const from = proxy.messages.length;
  const alternatives = judgeFrames(bytes);
  tally.requests += 1 + [...alternatives[0]!.ids.values()].filter((id) => id.requests > 0).length;
  const sentinel = `sentinel-${++sentinels}`;
  const framed = new Uint8Array(bytes.length + 1);
  framed.set(bytes);
  framed[bytes.length] = 0x0a;
  await proxy.write(framed);
  await proxy.send({ jsonrpc: "2.0", id: sentinel, method: "ping" });
  if (!await proxy.until(() => proxy.answerTo(sentinel, from) !== undefined, 20_000)) {
    const status = await Promise.race([proxy.process.status, Promise.resolve(undefined)]);
    return {
      ok: false,
      category: "the proxy stopped answering (hang or crash)",
      detail: `no answer to the ping after ${show(bytes)}; exited: ${JSON.stringify(status)}`,
      fatal: true,
    };
  }
  const observed = () => proxy.messages.slice(from).filter((m) => m.id !== sentinel);
  let outcome = evaluate(observed(), alternatives);
  if (outcome.state === "waiting") {
    await proxy.until(() => evaluate(observed(), alternatives).state !== "waiting", 10_000);
    outcome = evaluate(observed(), alternatives);
  }
  if (outcome.state === "ok") return { ok: true };
  if (outcome.state === "waiting") tally.lost++;
  const category = outcome.state === "waiting"
    ? "a request was never answered"
    : categorize(observed(), alternatives[0]!);
  return { ok: false, category, detail: `${show(bytes)}: ${outcome.detail}` };
}

const INITIALIZE = {
  jsonrpc: "2.0",
  id: "init",
  method: "initialize",
  params: {
    protocolVersion: "2025-11-25",
    capabilities: {},
    clientInfo: { name: "fuzz", version: "1.0.0" },
  },
};

/** Explicit inputs, one per class of malformed frame, with what JSON-RPC wants back. */
const CLASSES: Array<[string, string | Bytes]> = [
  ["not JSON: -32700, id null", "this is not json"],
  ["truncated JSON: -32700", '{"jsonrpc": "2.0", "id": 1, "method": "pi'],
  ["a lone NUL: -32700", "\u0000"],
  [
    "two messages on one line: -32700",
    '{"jsonrpc":"2.0","method":"a"}{"jsonrpc":"2.0","method":"b"}',
  ],
  ["method not a string: -32600 with the id", '{"jsonrpc": "2.0", "id": 5, "method": 7}'],
  ["jsonrpc 1.0: -32600 with the id", '{"jsonrpc": "1.0", "id": "a", "method": "ping"}'],
  ["no jsonrpc member: -32600 with the id", '{"id": 6, "method": "ping"}'],
  ["an object id: -32600, id null", '{"jsonrpc": "2.0", "id": {}, "method": "ping"}'],
  ["a null id on a request: -32600, id null", '{"jsonrpc": "2.0", "id": null, "method": "ping"}'],
  ["neither method nor result: -32600, id null", '{"jsonrpc": "2.0", "id": 12}'],
  [
    "params a number: -32600 with the id",
    '{"jsonrpc": "2.0", "id": 7, "method": "ping", "params": 5}',
  ],
  [
    "result and error both: -32600, id null (a response's id is the client's)",
    '{"jsonrpc": "2.0", "id": 8, "result": {}, "error": {"code": 1, "message": "x"}}',
  ],
  ["error not an object: -32600, id null", '{"jsonrpc": "2.0", "id": 13, "error": "boom"}'],
  ["an empty batch: -32600, id null", "[]"],
  ["a batch of numbers: one -32600 each", "[1, 2]"],
  ["a number: -32600", "42"],
  ["a string: -32600", '"ping"'],
  ["null: -32600", "null"],
  [
    "a batch with a good and a bad message: an answer and a -32600",
    '[{"jsonrpc": "2.0", "id": 10, "method": "ping"}, {"jsonrpc": "2.0", "id": 11}]',
  ],
  ["a notification: nothing", '{"jsonrpc": "2.0", "method": "notifications/fuzz"}'],
  ["a response to nothing: nothing", '{"jsonrpc": "2.0", "id": "never", "result": {}}'],
  ["CRLF: answered", '{"jsonrpc": "2.0", "id": 14, "method": "ping"}\r'],
  ["an empty line: nothing", ""],
  ["spaces, tabs and CR: nothing", " \t \r"],
  [
    "two frames in one write: both answered",
    '{"jsonrpc": "2.0", "id": 15, "method": "ping"}\n{"jsonrpc": "2.0", "id": 16, "method": "ping"}',
  ],
  [
    "invalid UTF-8 in a string: answered, or -32700",
    new Uint8Array([
      ...encoder.encode('{"jsonrpc": "2.0", "id": 17, "method": "pi'),
      0xc0,
      0xaf,
      ...encoder.encode('ng"}'),
    ]),
  ],
  [
    "a 2 MB request: answered",
    JSON.stringify({
      jsonrpc: "2.0",
      id: 18,
      method: "ping",
      params: { _meta: { pad: "y".repeat(2 * 1024 * 1024) } },
    }),
  ],
  [
    "params nested 100000 deep: answered",
    `{"jsonrpc": "2.0", "id": 19, "method": "ping", "params": {"d": ${"[".repeat(100_000)}${
      "]".repeat(100_000)
    }}}`,
  ],
  ["a top level nested 100000 deep: -32600", `${"[".repeat(100_000)}${"]".repeat(100_000)}`],
];

const METHODS = [
  "ping",
  "tools/list",
  "prompts/list",
  "resources/list",
  "resources/templates/list",
  "fuzz/unknown",
];

Deno.test("connect: every malformed stdin frame gets the JSON-RPC error it calls for (fuzz)", async (t) => {
  const settings = fuzzSettings(300);
  await using server = await startNative("http");
  await using proxy = new ConnectProcess(server.url);
  await proxy.send(INITIALIZE);
  assert.ok(await proxy.until(() => proxy.answerTo("init") !== undefined, 30_000), "initialized");
  await proxy.send({ jsonrpc: "2.0", method: "notifications/initialized" });

  for (const [name, input] of CLASSES) {
    await t.step(name, async () => {
      const bytes = typeof input === "string" ? encoder.encode(input) : input;
      const result = await runOne(proxy, bytes);
      if (!result.ok) assert.fail(`${result.category}: ${result.detail}`);
    });
  }

  await t.step(`${settings.runs} random inputs, seed ${settings.seed}`, async () => {
    const failures = new FuzzReport("connect stdin", settings);
    const target = { methods: METHODS, initialize: true, maxBytes: 1024 * 1024 };
    for (let i = 0; i < settings.runs; i++) {
      const input = generate(Rng.of(settings.seed, i), target, true);
      const result = await runOne(proxy, input.bytes);
      if (result.ok) continue;
      failures.fail(result.category, `#${i} [${input.label}] ${result.detail}`);
      if (result.fatal) break;
    }
    await report({
      case: `connect stdin fuzz: ${settings.runs} inputs, seed ${settings.seed}`,
      inputs: settings.runs + CLASSES.length,
      requests: tally.requests,
      lost: tally.lost,
      peakRssMb: await rssMb(proxy.process.pid),
    });
    failures.check();
  });

  await t.step("afterwards: stdout carried JSON-RPC only, and the proxy still works", async () => {
    assert.deepEqual(proxy.nonJson, [], "stdout carries protocol frames and nothing else");
    for (const message of proxy.messages) assert.equal(message.jsonrpc, "2.0");
    const from = proxy.messages.length;
    await proxy.send({
      jsonrpc: "2.0",
      id: "last",
      method: "tools/call",
      params: { name: "test_simple_text", arguments: {} },
    });
    assert.ok(await proxy.until(() => proxy.answerTo("last", from) !== undefined, 10_000));
    const answer = proxy.answerTo("last", from) as { result?: { content?: unknown[] } };
    assert.ok(answer.result?.content?.length, JSON.stringify(answer));
    assert.ok(
      !proxy.stderr.some((line) => /panicked|Uncaught/.test(line)),
      proxy.stderr.join("\n"),
    );
  });

  await t.step("at EOF it exits 0", async () => {
    await proxy.closeInput();
    const status = await Promise.race([
      proxy.process.status,
      new Promise<undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), 20_000);
        proxy.process.status.then(() => clearTimeout(timer));
      }),
    ]);
    assert.equal(status?.code, 0, proxy.stderr.join("\n"));
  });
});
