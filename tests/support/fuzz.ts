// Deterministic fuzzing of JSON-RPC input: a seeded PRNG (mulberry32), a seed corpus of valid
// messages, mutations of the value (wrong types, missing members, nesting, batches) and of the
// bytes (truncation, bit flips, invalid UTF-8, CR/LF, NUL, BOM, long lines), and the oracle: what
// JSON-RPC 2.0 and MCP say must come back for an input, written from the specs, not from src/.
// MCP_PROXY_FUZZ_SEED (a number, or "random") and MCP_PROXY_FUZZ_RUNS choose a longer run.

export type Id = string | number;
/** Bytes on their own buffer (what fetch and writers take). */
export type Bytes = Uint8Array<ArrayBuffer>;

/** The seed CI uses. */
export const DEFAULT_SEED = 0x6d637078;

export interface FuzzSettings {
  seed: number;
  runs: number;
}

/** The seed and run count: from the environment, else the fixed seed and `defaultRuns`. */
export function fuzzSettings(defaultRuns: number): FuzzSettings {
  const seedText = Deno.env.get("MCP_PROXY_FUZZ_SEED")?.trim();
  const runsText = Deno.env.get("MCP_PROXY_FUZZ_RUNS")?.trim();
  let seed = DEFAULT_SEED;
  if (seedText === "random") seed = crypto.getRandomValues(new Uint32Array(1))[0]!;
  else if (seedText) seed = Number(seedText) >>> 0;
  const runs = runsText ? Number(runsText) : defaultRuns;
  if (seedText && seedText !== "random" && !/^\d+$/.test(seedText)) {
    throw new Error(`MCP_PROXY_FUZZ_SEED must be a number or "random" (got "${seedText}")`);
  }
  if (!Number.isInteger(runs) || runs < 1) {
    throw new Error(`MCP_PROXY_FUZZ_RUNS must be a positive integer (got "${runsText}")`);
  }
  return { seed, runs };
}

/** mulberry32: small, fast, and the same sequence on every platform for a seed. */
export class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** The generator of one iteration: reproducible on its own from (seed, iteration). */
  static of(seed: number, iteration: number): Rng {
    return new Rng((seed ^ Math.imul(iteration + 1, 0x9e3779b9)) >>> 0);
  }

  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** 0 <= n < max */
  int(max: number): number {
    return Math.floor(this.next() * max);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** What a fuzz target can take. */
export interface FuzzTarget {
  /** Request methods the upstream answers without asking the client anything. */
  methods: readonly string[];
  /** Whether an initialize request may be generated (it starts a session without one). */
  initialize: boolean;
  /** The longest input to make (bytes, roughly). */
  maxBytes: number;
}

/** One generated input. */
export interface FuzzInput {
  /** How it was made, e.g. "request id:float bytes:truncate". */
  label: string;
  bytes: Bytes;
}

const encoder = new TextEncoder();
const PROTOCOL = "2025-11-25";

/** Ids unique within a run (strings and numbers, both). */
let idCounter = 0;
function freshId(rng: Rng): Id {
  idCounter++;
  return rng.chance(0.5) ? `f-${idCounter}` : 100_000 + idCounter;
}

type Template = (rng: Rng, target: FuzzTarget) => Record<string, unknown> | unknown[];

const request: Template = (rng, target) => {
  const message: Record<string, unknown> = {
    jsonrpc: "2.0",
    id: freshId(rng),
    method: rng.pick(target.methods),
  };
  const params = rng.pick([
    undefined,
    {},
    { _meta: { progressToken: `p-${idCounter}` } },
    { cursor: "abc" },
    { name: "echo", arguments: { text: "hi" } },
  ]);
  if (params !== undefined) message.params = params;
  return message;
};

const initialize: Template = (rng) => ({
  jsonrpc: "2.0",
  id: freshId(rng),
  method: "initialize",
  params: {
    protocolVersion: PROTOCOL,
    capabilities: {},
    clientInfo: { name: "fuzz", version: "1.0.0" },
  },
});

const notification: Template = (rng) =>
  rng.pick([
    () => ({ jsonrpc: "2.0", method: "notifications/fuzz" }),
    () => ({ jsonrpc: "2.0", method: "notifications/fuzz", params: { n: 1 } }),
    () => ({
      jsonrpc: "2.0",
      method: "notifications/cancelled",
      params: { requestId: `never-${freshId(rng)}`, reason: "fuzz" },
    }),
    () => ({
      jsonrpc: "2.0",
      method: "notifications/progress",
      params: { progressToken: `never-${freshId(rng)}`, progress: 1 },
    }),
  ])();

/** Answers to server requests that were never made: valid, and nothing comes back. */
const response: Template = (rng) =>
  rng.chance(0.5)
    ? { jsonrpc: "2.0", id: `never-${freshId(rng)}`, result: {} }
    : { jsonrpc: "2.0", id: `never-${freshId(rng)}`, error: { code: -32000, message: "no" } };

const batch: Template = (rng, target) => {
  const items = [request, notification, response];
  const size = 1 + rng.int(3);
  return Array.from({ length: size }, () => rng.pick(items)(rng, target));
};

/** Wraps `inner` in `depth` levels of arrays or objects. */
function nest(depth: number, inner: unknown, arrays: boolean): unknown {
  let value = inner;
  for (let i = 0; i < depth; i++) value = arrays ? [value] : { a: value };
  return value;
}

type Mutation = (rng: Rng, message: Record<string, unknown>, target: FuzzTarget) => unknown;

const ODD_IDS: readonly unknown[] = [
  null,
  true,
  {},
  [],
  [1],
  "",
  1.5,
  -1,
  0,
  -0,
  1e21,
  2 ** 53 + 2,
  "x".repeat(5000),
  "\u0000",
  "\ud800",
  "id\r\nInjected: yes",
];
const ODD_METHODS: readonly unknown[] = [
  undefined,
  5,
  null,
  {},
  ["ping"],
  "",
  "rpc.discover",
  "t\u00f6\u00f6ls/list",
  "ping\u0000",
  "m".repeat(10_000),
];
const ODD_PARAMS: readonly unknown[] = [
  5,
  "params",
  null,
  true,
  [],
  [1, 2],
  { _meta: 5 },
  { _meta: { progressToken: {} } },
  JSON.parse('{"__proto__": {"polluted": true}}'),
  { constructor: { prototype: { polluted: true } } },
];
const ODD_VERSIONS: readonly unknown[] = [undefined, "1.0", "2", 2, 2.0, null, "", " 2.0", [
  "2.0",
], {}];

/** Value-level mutations: [name, how]. */
const MUTATIONS: ReadonlyArray<[string, Mutation]> = [
  ["valid", (_rng, message) => message],
  ["valid", (_rng, message) => message],
  ["jsonrpc", (rng, message) => set(message, "jsonrpc", rng.pick(ODD_VERSIONS))],
  ["id", (rng, message) => set(message, "id", rng.pick(ODD_IDS))],
  ["method", (rng, message) => set(message, "method", rng.pick(ODD_METHODS))],
  ["params", (rng, message) => set(message, "params", rng.pick(ODD_PARAMS))],
  [
    "result+error",
    (_rng, message) => ({ ...message, result: {}, error: { code: 1, message: "" } }),
  ],
  ["error-shape", (rng, message) => {
    const copy = { ...message };
    delete copy.method;
    delete copy.params;
    delete copy.result;
    copy.error = rng.pick(["boom", null, {}, { code: "1", message: "m" }, {
      code: 1.5,
      message: "",
    }, {
      code: -1,
    }, { message: "no code" }]);
    return copy;
  }],
  ["no-method", (_rng, message) => {
    const copy = { ...message };
    delete copy.method;
    return copy;
  }],
  ["extra-member", (_rng, message) => ({ ...message, extra: { x: 1 } })],
  ["not-an-object", (rng) => rng.pick([1, "ping", null, true, false, 0.5])],
  ["batch", (rng, message) =>
    rng.pick([
      () => [],
      () => [[]],
      () => [message],
      () => [message, 1],
      () => [1, 2],
      () => [[message]],
      () => [message, null],
    ])()],
  [
    "batch-over-100",
    (_rng, message) =>
      Array.from({ length: 101 }, (_, i) => ({ ...message, id: `big-${idCounter}-${i}` })),
  ],
  ["deep", (rng, message) => {
    const depth = rng.pick([64, 1000, 10_000, 100_000]);
    return { ...message, params: { deep: nest(depth, 1, rng.chance(0.5)) } };
  }],
  ["deep-top", (rng) => nest(rng.pick([1000, 100_000]), [], true)],
  ["long", (rng, message, target) => {
    const size = rng.pick([16 * 1024, 200 * 1024, Math.floor(target.maxBytes * 1.2)]);
    return { ...message, params: { pad: "y".repeat(Math.max(0, size)) } };
  }],
];

function set(message: Record<string, unknown>, key: string, value: unknown): unknown {
  const copy = { ...message };
  if (value === undefined) delete copy[key];
  else copy[key] = value;
  return copy;
}

/** Byte-level mutations of the serialized text. */
const BYTE_MUTATIONS: ReadonlyArray<[string, (rng: Rng, bytes: Bytes) => Bytes]> = [
  ["truncate", (rng, bytes) => bytes.slice(0, rng.int(bytes.length))],
  ["flip", (rng, bytes) => {
    const copy = bytes.slice();
    for (let n = 1 + rng.int(3); n > 0 && copy.length > 0; n--) {
      copy[rng.int(copy.length)]! ^= 1 << rng.int(8);
    }
    return copy;
  }],
  ["insert", (rng, bytes) => {
    const at = rng.int(bytes.length + 1);
    const insert = rng.pick([
      [0x00],
      [0x0d],
      [0x22],
      [0x5c],
      [0x7b],
      [0x5d],
      [0x2c],
      [0x80],
      [0xc0, 0xaf],
      [0xed, 0xa0, 0x80],
      [0xf5],
      [0xff],
      [0xef, 0xbb, 0xbf],
      [rng.int(256)],
    ]);
    return concat(bytes.slice(0, at), Uint8Array.from(insert), bytes.slice(at));
  }],
  ["delete", (rng, bytes) => {
    const at = rng.int(bytes.length);
    return concat(bytes.slice(0, at), bytes.slice(at + 1));
  }],
  ["duplicate", (rng, bytes) => {
    const from = rng.int(bytes.length);
    const to = from + rng.int(bytes.length - from + 1);
    return concat(bytes.slice(0, to), bytes.slice(from, to), bytes.slice(to));
  }],
  ["bom", (_rng, bytes) => concat(Uint8Array.of(0xef, 0xbb, 0xbf), bytes)],
  ["trailing-cr", (_rng, bytes) => concat(bytes, Uint8Array.of(0x0d))],
  ["nul", (_rng, bytes) => concat(bytes, Uint8Array.of(0x00))],
  ["whitespace", (rng) => encoder.encode(rng.pick(["", " ", "\t", "\r", "  \t \r", "\u00a0"]))],
  ["garbage", (rng) => Uint8Array.from({ length: 1 + rng.int(64) }, () => rng.int(256))],
];

function concat(...parts: Uint8Array[]): Bytes {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * One input: a corpus message, a value mutation, then (sometimes) byte mutations. `lines` allows
 * byte mutations that add line breaks (stdio: an input may then be several frames).
 */
export function generate(rng: Rng, target: FuzzTarget, lines: boolean): FuzzInput {
  const templates: Array<[string, Template]> = [
    ["request", request],
    ["request", request],
    ["notification", notification],
    ["response", response],
    ["batch", batch],
  ];
  if (target.initialize) templates.push(["initialize", initialize]);
  const [kind, template] = rng.pick(templates);
  const base = template(rng, target);
  const [mutation, mutate] = Array.isArray(base)
    ? rng.pick(MUTATIONS.filter(([name]) => name === "valid" || name === "batch"))
    : rng.pick(MUTATIONS);
  const value = Array.isArray(base) && mutation === "batch"
    ? [...base, rng.pick([1, null, [], {}])]
    : Array.isArray(base)
    ? base
    : mutate(rng, base, target);
  let bytes: Bytes = encoder.encode(JSON.stringify(value) ?? "undefined");
  const labels = [kind, mutation];
  const rounds = rng.chance(0.6) ? 0 : 1 + rng.int(2);
  for (let i = 0; i < rounds; i++) {
    const [name, byteMutate] = rng.pick(BYTE_MUTATIONS);
    bytes = byteMutate(rng, bytes);
    labels.push(`bytes:${name}`);
  }
  if (lines && rng.chance(0.05)) {
    // A line break in the middle: the input is two frames.
    const at = rng.int(bytes.length + 1);
    bytes = concat(
      bytes.slice(0, at),
      Uint8Array.of(rng.chance(0.5) ? 0x0a : 0x0d, 0x0a),
      bytes.slice(at),
    );
    labels.push("bytes:split");
  }
  return { label: labels.join(" "), bytes };
}

// ---- the oracle ----

/** What must come back for one JSON-RPC item: JSON-RPC 2.0 sections 4-5, narrowed by MCP. */
export type ItemVerdict =
  /** A request: exactly one response with this id (a result or any error). */
  | { kind: "request"; id: Id; method: string }
  /** A notification or a response: nothing comes back. */
  | { kind: "silent" }
  /** Malformed: an Invalid Request error (-32600), with the id when it can be recovered. */
  | { kind: "invalid"; id: Id | null; why: string }
  /** Dubious but not forbidden (array params, extra members): refused as invalid or served. */
  | { kind: "either"; id: Id | null; why: string; served: ItemVerdict };

function validId(id: unknown): id is Id {
  return typeof id === "string" || (typeof id === "number" && Number.isFinite(id));
}

/** The verdict for one parsed item. */
export function judgeItem(item: unknown): ItemVerdict {
  if (typeof item !== "object" || item === null || Array.isArray(item)) {
    return { kind: "invalid", id: null, why: "not an object" };
  }
  const m = item as Record<string, unknown>;
  // Only a request's id may be echoed: a response's id is in the other side's id space (an error
  // carrying it would answer one of the client's own requests).
  const id = "method" in m && validId(m.id) ? m.id : null;
  const invalid = (why: string): ItemVerdict => ({ kind: "invalid", id, why });
  if (m.jsonrpc !== "2.0") return invalid('jsonrpc is not "2.0"');
  if ("method" in m) {
    if (typeof m.method !== "string") return invalid("method is not a string");
    if ("id" in m && !validId(m.id)) return invalid("id is not a string or a number");
    // JSON-RPC 2.0 4.2: params, when present, MUST be an array or an object.
    if ("params" in m && (typeof m.params !== "object" || m.params === null)) {
      return invalid("params is not an array or an object");
    }
    const served: ItemVerdict = "id" in m
      ? { kind: "request", id: m.id as Id, method: m.method }
      : { kind: "silent" };
    const extra = Object.keys(m).filter((k) => !["jsonrpc", "id", "method", "params"].includes(k));
    // MCP's params are objects; JSON-RPC allows arrays. Unknown members are not forbidden.
    if (Array.isArray(m.params)) return { kind: "either", id, why: "params is an array", served };
    if (extra.length > 0) return { kind: "either", id, why: `extra members ${extra}`, served };
    // MCP's numeric ids are integers; JSON-RPC only says they should have no fractional part.
    if (fractional(m.id)) return { kind: "either", id, why: "a fractional id", served };
    return served;
  }
  const hasResult = "result" in m;
  const hasError = "error" in m;
  if (!hasResult && !hasError) return invalid("neither method, result nor error");
  // JSON-RPC 2.0 5: exactly one of result and error; error is {code: integer, message: string}.
  if (hasResult && hasError) return invalid("both result and error");
  if (hasError) {
    const error = m.error as Record<string, unknown> | null;
    if (
      typeof error !== "object" || error === null || Array.isArray(error) ||
      !Number.isInteger(error.code) || typeof error.message !== "string"
    ) {
      return invalid("error is not {code: integer, message: string}");
    }
    if (!validId(m.id) && m.id !== null) return invalid("id is not a string, a number or null");
  } else if (!validId(m.id)) {
    return invalid("id is not a string or a number");
  }
  const extra = Object.keys(m).filter((k) => !["jsonrpc", "id", "result", "error"].includes(k));
  if (extra.length > 0) {
    return { kind: "either", id, why: `extra members ${extra}`, served: { kind: "silent" } };
  }
  if (fractional(m.id)) {
    return { kind: "either", id, why: "a fractional id", served: { kind: "silent" } };
  }
  return { kind: "silent" };
}

function fractional(id: unknown): boolean {
  return typeof id === "number" && !Number.isInteger(id);
}

/** Whether `bytes` is well-formed UTF-8. */
export function isUtf8(bytes: Uint8Array): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** Parses like a lenient reader (replacement characters, BOM kept); undefined when not JSON. */
export function parseLenient(bytes: Uint8Array): { ok: true; value: unknown } | { ok: false } {
  const text = new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes);
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

// ---- HTTP bodies ----

/** What a POSTed body must get, before session rules: a JSON-RPC error, or its items served. */
export type BodyVerdict =
  | { kind: "error"; status: number; code: number; why: string }
  | { kind: "ok"; batch: boolean; items: unknown[]; verdicts: ItemVerdict[] };

const BOM = [0xef, 0xbb, 0xbf];

function startsWithBom(bytes: Uint8Array): boolean {
  return BOM.every((byte, i) => bytes[i] === byte);
}

/**
 * The acceptable verdicts for a body (more than one where the specs leave a choice: a BOM may be
 * ignored, invalid UTF-8 may be refused or replaced, dubious items refused or served). A body
 * with a malformed item is refused whole, as MCP's HTTP transport does.
 */
export function judgeBody(bytes: Uint8Array, maxBytes: number): BodyVerdict[] {
  if (bytes.length > maxBytes) {
    return [{ kind: "error", status: 413, code: -32600, why: "over the size limit" }];
  }
  const parseError: BodyVerdict = { kind: "error", status: 400, code: -32700, why: "not JSON" };
  const out = judgeParsed(bytes, parseError);
  if (startsWithBom(bytes)) out.push(...judgeParsed(bytes.subarray(3), parseError), parseError);
  if (!isUtf8(bytes)) out.push(parseError);
  return out;
}

function judgeParsed(bytes: Uint8Array, parseError: BodyVerdict): BodyVerdict[] {
  const parsed = parseLenient(bytes);
  if (!parsed.ok) return [parseError];
  const invalid = (why: string): BodyVerdict => ({ kind: "error", status: 400, code: -32600, why });
  const batch = Array.isArray(parsed.value);
  const items = batch ? parsed.value as unknown[] : [parsed.value];
  if (batch && items.length === 0) return [invalid("an empty batch")];
  const verdicts = items.map(judgeItem);
  const bad = verdicts.find((verdict) => verdict.kind === "invalid");
  if (bad?.kind === "invalid") return [invalid(bad.why)];
  const served = verdicts.map((verdict) => verdict.kind === "either" ? verdict.served : verdict);
  const ok: BodyVerdict = { kind: "ok", batch, items, verdicts: served };
  const dubious = verdicts.find((verdict) => verdict.kind === "either");
  return dubious?.kind === "either" ? [invalid(dubious.why), ok] : [ok];
}

// ---- stdio frames ----

/** What must come back on stdout for some input lines. */
export interface FrameExpectation {
  /** Errors with id null, by code (-32700 parse error, -32600 invalid request). */
  nullErrors: Map<number, number>;
  /** By id key: `invalid` -32600 errors the proxy owes, and up to `requests` answers (>= 1). */
  ids: Map<string, { invalid: number; requests: number }>;
  /** Why, for messages. */
  why: string[];
}

function emptyExpectation(): FrameExpectation {
  return { nullErrors: new Map(), ids: new Map(), why: [] };
}

function merge(a: FrameExpectation, b: FrameExpectation): FrameExpectation {
  const out = emptyExpectation();
  for (const source of [a, b]) {
    for (const [code, n] of source.nullErrors) {
      out.nullErrors.set(code, (out.nullErrors.get(code) ?? 0) + n);
    }
    for (const [key, entry] of source.ids) {
      const seen = out.ids.get(key) ?? { invalid: 0, requests: 0 };
      out.ids.set(key, {
        invalid: seen.invalid + entry.invalid,
        requests: seen.requests + entry.requests,
      });
    }
    out.why.push(...source.why);
  }
  return out;
}

/** All combinations of per-part alternatives (capped: a few parts, two choices each). */
function product(parts: FrameExpectation[][]): FrameExpectation[] {
  let out = [emptyExpectation()];
  for (const choices of parts) {
    out = out.flatMap((sofar) => choices.map((choice) => merge(sofar, choice))).slice(0, 256);
  }
  return out;
}

function one(
  why: string,
  nullError?: number,
  id?: { key: string; invalid: number; requests: number },
): FrameExpectation {
  const out = emptyExpectation();
  out.why.push(why);
  if (nullError !== undefined) out.nullErrors.set(nullError, 1);
  if (id) out.ids.set(id.key, { invalid: id.invalid, requests: id.requests });
  return out;
}

function itemExpectations(verdict: ItemVerdict): FrameExpectation[] {
  switch (verdict.kind) {
    case "request":
      return [one("request", undefined, {
        key: idKey(verdict.id),
        invalid: 0,
        requests: 1,
      })];
    case "silent":
      return [one("silent")];
    case "invalid":
      return [invalidExpectation(verdict.id, verdict.why)];
    case "either":
      return [invalidExpectation(verdict.id, verdict.why), ...itemExpectations(verdict.served)];
  }
}

function invalidExpectation(id: Id | null, why: string): FrameExpectation {
  return id === null
    ? one(`invalid (${why})`, -32600)
    : one(`invalid (${why})`, undefined, { key: idKey(id), invalid: 1, requests: 0 });
}

function lineExpectations(bytes: Uint8Array): FrameExpectation[] {
  const text = new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes);
  // JSON's own whitespace makes a blank line, skipped; other blank-looking lines may be either.
  if (/^[ \t\r]*$/.test(text)) return [one("blank")];
  const parseError = one("not JSON", -32700);
  if (text.trim() === "") return [one("blank"), parseError];
  const out = parsedExpectations(bytes, parseError);
  if (startsWithBom(bytes)) out.push(...parsedExpectations(bytes.subarray(3), parseError));
  if (!isUtf8(bytes) || startsWithBom(bytes)) out.push(parseError);
  return out;
}

function parsedExpectations(bytes: Uint8Array, parseError: FrameExpectation): FrameExpectation[] {
  const parsed = parseLenient(bytes);
  if (!parsed.ok) return [parseError];
  if (Array.isArray(parsed.value)) {
    if (parsed.value.length === 0) return [one("an empty batch", -32600)];
    return product(parsed.value.map((item) => itemExpectations(judgeItem(item))));
  }
  return itemExpectations(judgeItem(parsed.value));
}

/**
 * The acceptable outcomes for `bytes` written to a newline-delimited JSON-RPC reader (a final
 * newline is added by the writer): each LF ends a frame, a CR before it is dropped.
 */
export function judgeFrames(bytes: Uint8Array): FrameExpectation[] {
  const frames: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x0a) {
      let end = i;
      if (end > start && bytes[end - 1] === 0x0d) end--;
      frames.push(bytes.subarray(start, end));
      start = i + 1;
    }
  }
  return product(frames.map(lineExpectations));
}

/** The canonical key of an id (1 and "1" differ). */
export function idKey(id: Id): string {
  return JSON.stringify(id);
}

/** A short, printable view of an input. */
export function show(bytes: Uint8Array, max = 160): string {
  const text = new TextDecoder().decode(bytes.subarray(0, max));
  return JSON.stringify(text) + (bytes.length > max ? ` (+${bytes.length - max} bytes)` : "");
}

/** Failures grouped by what went wrong, printed with the seed so a run can be repeated. */
export class FuzzReport {
  readonly settings: FuzzSettings;
  readonly target: string;
  #groups = new Map<string, string[]>();
  #count = 0;

  constructor(target: string, settings: FuzzSettings) {
    this.target = target;
    this.settings = settings;
  }

  get failures(): number {
    return this.#count;
  }

  fail(category: string, detail: string): void {
    this.#count++;
    const group = this.#groups.get(category) ?? [];
    group.push(detail);
    this.#groups.set(category, group);
  }

  /** Throws with every category, three examples each, and how to repeat the run. */
  check(): void {
    if (this.#count === 0) return;
    const { seed, runs } = this.settings;
    const lines = [
      `${this.target}: ${this.#count} fuzz failure(s); repeat with ` +
      `MCP_PROXY_FUZZ_SEED=${seed} MCP_PROXY_FUZZ_RUNS=${runs}`,
    ];
    for (const [category, details] of this.#groups) {
      lines.push(`- ${category}: ${details.length} case(s), e.g.`);
      for (const detail of details.slice(0, 3)) lines.push(`    ${detail}`);
    }
    throw new Error(lines.join("\n"));
  }
}

/** Waits for a condition that is re-checked whenever `wake()` is called (or at the deadline). */
export class Waiter {
  #wake: Array<() => void> = [];

  /** Re-checks every waiting condition now. */
  wake(): void {
    for (const wake of this.#wake.splice(0)) wake();
  }

  /** Resolves true once `check` holds, false at the deadline. */
  async until(check: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    return true;
  }
}
