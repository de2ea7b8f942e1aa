// parseLarge, which large messages read as bytes (a child's stdout line, our stdin, a POST body)
// are parsed with: the same members in the same order as JSON.parse of their text, long strings
// read as they came, the bytes kept to send on, and undefined (the text path) for whatever it
// does not take: broken JSON, long keys, long strings that are not ASCII, texts with other large
// parts, and texts that hold its stand-in's mark.

import assert from "node:assert/strict";
import {
  jsonBody,
  jsonChunks,
  type JSONRPCMessage,
  jsonSize,
  jsonText,
  parseLarge,
  parseServerPieces,
  withId,
} from "../src/jsonrpc.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** parseLarge of `text`'s bytes: JSON.parse's value (same order), or undefined. */
function check(text: string, label: string, taken: boolean): void {
  const bytes = encoder.encode(text);
  const value = parseLarge(bytes);
  if (!taken) {
    assert.equal(value, undefined, `${label}: left to JSON.parse`);
    return;
  }
  assert.ok(value !== undefined, `${label}: taken`);
  bytes.fill(0); // what parseLarge keeps is its own
  const expected = JSON.parse(text);
  assert.equal(JSON.stringify(value), JSON.stringify(expected), `${label}: the same members`);
  assert.deepStrictEqual(value, expected, `${label}: the same value`);
}

const LONG = "x".repeat(140_000);
const MID = "y".repeat(70_000);

Deno.test("parseLarge: long strings as members and elements give JSON.parse's value", () => {
  const cases: Record<string, unknown> = {
    "a tool result": { jsonrpc: "2.0", id: 7, result: { content: [{ type: "text", text: LONG }] } },
    "a request's argument": {
      jsonrpc: "2.0",
      id: "a",
      method: "tools/call",
      params: { name: "size", arguments: { text: LONG }, _meta: { progressToken: 3 } },
    },
    "several, in arrays": { a: [LONG, MID, { b: [MID, "short", 1.5e3, null, true] }], c: MID },
    "escapes, quotes and unicode in short parts": {
      text: `"\\\n\t\u0001${LONG}`,
      short: "\u00e9\u4e2d\ud83d\ude00\u2028",
      [`k\u00e9y`]: MID,
    },
    "duplicate-looking stand-ins": { a: "\uffff mcp-proxy 0", t: LONG },
    "integer-like keys": { b: MID, 2: LONG, 1: "one" },
  };
  const expectations: Record<string, boolean> = { "duplicate-looking stand-ins": false };
  for (const [label, value] of Object.entries(cases)) {
    const taken = expectations[label] ?? true;
    check(JSON.stringify(value), label, taken);
    check(`\r\n ${JSON.stringify(value, null, 2)}\n`, `${label}, indented`, taken);
  }
  check(`{"a":"${MID}","b":1,"a":"${LONG}"}`, "duplicate members", true);
  check(`{"__proto__":"${LONG}","x":{"__proto__":[1]}}`, "a __proto__ member", true);
  check(`{"t":"${LONG}\\u0041\\/\\\\\\"","u":"${MID}\\\\"}`, "escapes in long strings", true);
  check(`{"a":"\\uFFFF mcp-proxy 0","t":"${LONG}"}`, "an escaped mark", false);
  check(`{"t":"${MID}"${" ".repeat(200)}\n:"${LONG}"}`, "a long key far from its colon", false);
  check(`{"t":"${LONG}\u00e9"}`, "a long string that is not ASCII", false);
  check(`{"n":[${"1,".repeat(40_000)}2],"t":"${LONG}"}`, "a long rest", false);
  check(`{"t":"${"ab".repeat(20_000)}"}`, "no long string", false);
  check(`["${LONG}"]`, "a batch", false);
  const notUtf8 = encoder.encode(`{"a":"\u00e9","t":"${LONG}","b":"\u00e9"}`);
  for (const at of [6, notUtf8.length - 4]) {
    const bytes = notUtf8.slice();
    bytes[at] = 0xff;
    assert.equal(parseLarge(bytes), undefined, `a byte that is not UTF-8 at ${at}: the text path`);
  }
  const bom = encoder.encode(`{"t":"${LONG}"\ufeff,"b":1}`);
  assert.equal(parseLarge(bom), undefined, "a byte order mark between members");
  check(`"${LONG}"`, "a string", false);
});

Deno.test("parseLarge: broken JSON is left to JSON.parse", () => {
  const broken = [
    `{"t":"${LONG}`,
    `{"t":"${LONG}\\"}`,
    `{"t":"${LONG}\u0001"}`,
    `{"t":"${LONG}\\q"}`,
    `{"t":"${LONG}\\u12"}`,
    `{"t":"${LONG}\\u12x4"}`,
    `{"t":"${LONG}"`,
    `{"t":"${LONG}"}}`,
    `{"t":"${LONG}" "u":1}`,
    `{"t":"${LONG}",}`,
    `{"t":"${LONG}"}x`,
    `{t:"${LONG}"}`,
    `{"t":x"${LONG}"}`,
    `{"t":["${LONG}" : 1]}`,
    `{"${LONG}" "a"}`,
    `{"a":"${MID}", "b": "\uffff mcp-proxy 0" "c":"${LONG}"}`,
    `{"a":"${MID}\u0000"}`,
  ];
  broken.forEach((text, i) => {
    assert.throws(() => JSON.parse(text), SyntaxError, `broken text ${i} is broken`);
    assert.equal(parseLarge(encoder.encode(text)), undefined, `broken text ${i}`);
  });
});

Deno.test("parseLarge: long strings are read when first asked for, and can be replaced", () => {
  const text = JSON.stringify({ jsonrpc: "2.0", id: 1, result: { content: [{ text: LONG }] } });
  const message = parseLarge(encoder.encode(text)) as {
    result: { content: { text: string }[] };
  };
  const item = message.result.content[0]!;
  assert.equal(typeof Object.getOwnPropertyDescriptor(item, "text")!.get, "function");
  assert.equal(item.text, LONG);
  assert.equal(Object.getOwnPropertyDescriptor(item, "text")!.value, LONG, "a plain member now");
  const again = parseLarge(encoder.encode(text)) as typeof message;
  again.result.content[0]!.text = "replaced";
  assert.equal(again.result.content[0]!.text, "replaced");
  assert.deepEqual(Object.keys(again.result.content[0]!), ["text"]);
  assert.equal(JSON.parse(JSON.stringify(again)).result.content[0].text, "replaced");
  assert.deepEqual({ ...message.result }, JSON.parse(text).result);
});

Deno.test("parseLarge: the bytes are kept to send on; text only when asked for", () => {
  const text = JSON.stringify({ jsonrpc: "2.0", id: 1, result: { text: LONG } });
  const message = parseLarge(encoder.encode(`  ${text}\r\n`)) as JSONRPCMessage;
  const body = jsonBody(message);
  assert.ok(body instanceof Uint8Array);
  assert.equal(decoder.decode(body), text, "trimmed");
  assert.equal(jsonText(message), text);
  const owned = encoder.encode(text);
  const given = jsonBody(parseLarge(owned, { owned: true }) as JSONRPCMessage) as Uint8Array;
  assert.equal(given.buffer, owned.buffer, "owned bytes: kept, not copied");
  const lines = JSON.stringify({ id: 1, result: { text: LONG } }, null, 1);
  const spread = parseLarge(encoder.encode(lines)) as JSONRPCMessage;
  assert.equal(typeof jsonBody(spread), "string", "over lines: nothing kept");
  assert.equal(jsonBody(spread), JSON.stringify(JSON.parse(lines)));
});

Deno.test("parseServerPieces: a message in pieces, read as bytes when it can be, else as text", () => {
  const message = {
    jsonrpc: "2.0",
    id: 3,
    result: { content: [{ type: "text", text: LONG }] },
  } as JSONRPCMessage;
  const text = JSON.stringify(message);
  for (const size of [1000, 65_536, 300_000]) {
    const pieces = [];
    for (let at = 0; at < text.length; at += size) pieces.push(text.slice(at, at + size));
    const parsed = parseServerPieces(pieces);
    assert.deepEqual(parsed, { message });
    assert.ok(jsonBody(parsed.message!) instanceof Uint8Array, "the bytes kept");
  }
  // Long strings that are not ASCII: pieces are text already (UTF-8 once encoded), bytes may not be.
  const wide = JSON.stringify({ ...message, result: { text: "\u00e9\u{1f600}".repeat(40_000) } });
  const parsed = parseServerPieces([wide.slice(0, 7), wide.slice(7)]);
  assert.deepEqual(parsed, { message: JSON.parse(wide) });
  assert.ok(jsonBody(parsed.message!) instanceof Uint8Array, "the bytes kept");
  assert.equal(parseLarge(encoder.encode(wide)), undefined, "bytes that could be any bytes");
  assert.deepEqual(parseLarge(encoder.encode(wide), { utf8: true }), JSON.parse(wide));
  // What the bytes path declines: the text path's answer, as for the joined text.
  const key = JSON.stringify({ jsonrpc: "2.0", id: 1, result: { [LONG]: 1 } });
  const declined = parseServerPieces([key.slice(0, 100), key.slice(100)]);
  assert.deepEqual(declined, { message: JSON.parse(key) });
  assert.equal(typeof jsonBody(declined.message!), "string");
  assert.match(parseServerPieces([`{"id":1,"t":"${LONG}"}`]).problem!, /an invalid message/);
  assert.match(parseServerPieces([`{"t":"${LONG}`]).problem!, /^invalid JSON/);
});

Deno.test("withId: a message kept as bytes goes on with its new id written in place", () => {
  const wire = (id: string) =>
    `{"jsonrpc":"2.0", "id" :${id} ,"result":{"text":"${LONG}","id":"inner"}}`;
  const message = parseLarge(encoder.encode(wire(' "a\\"b"'))) as JSONRPCMessage;
  const join = (chunks: string | Uint8Array[]) =>
    typeof chunks === "string"
      ? chunks
      : decoder.decode(new Uint8Array(chunks.flatMap((c) => [...c])));
  for (const [id, json] of [[7, "7"], ["x\u00e9", '"x\u00e9"'], [-1.5, "-1.5"]] as const) {
    const moved = withId(message, id);
    assert.equal((moved as { id: unknown }).id, id);
    assert.equal((message as { id: unknown }).id, 'a"b', "the original keeps its id");
    const chunks = jsonChunks(moved);
    assert.ok(Array.isArray(chunks) && chunks.length === 3, "in pieces, not copied");
    // Only the value is replaced: the space before it stays.
    assert.equal(join(chunks), wire(` ${json}`));
    assert.equal(decoder.decode(jsonBody(moved) as Uint8Array), wire(` ${json}`));
    assert.equal(jsonText(moved), wire(` ${json}`));
    assert.equal(jsonSize(moved), encoder.encode(wire(` ${json}`)).length);
    assert.equal(join(jsonChunks(withId(moved, "again"))), wire(' "again"'), "moved twice");
  }
  // A string "id" that is a value is not the id.
  const named = parseLarge(
    encoder.encode(`{"jsonrpc":"2.0","id":4,"method":"id","params":{"t":"${LONG}"}}`),
  ) as JSONRPCMessage;
  assert.ok(Array.isArray(jsonChunks(withId(named, 5))), "the id found before a value named id");
  // Where the id cannot be told from the bytes, the message is written as parsed.
  const written = (text: string) => {
    const parsed = parseLarge(encoder.encode(text)) as JSONRPCMessage;
    assert.ok(parsed, text.slice(0, 40));
    return jsonChunks(withId(parsed, 9));
  };
  for (
    const text of [
      `{"id":1,"id":2,"result":{"t":"${LONG}"}}`,
      `{"\\u0069d":1,"id":2,"result":{"t":"${LONG}"}}`,
      `{"id":2,"\\u0069d":2,"result":{"t":"${LONG}"}}`,
      `{"method":"n","params":{"t":"${LONG}","id":3}}`,
    ]
  ) {
    const chunks = written(text);
    assert.equal(typeof chunks, "string", text.slice(0, 40));
    assert.equal((JSON.parse(chunks as string) as { id: number }).id, 9);
  }
});

/** A deterministic generator (mulberry32). */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("parseLarge: random messages, whole and broken at random: JSON.parse's value or undefined", () => {
  const next = random(7);
  const pick = <T>(items: T[]): T => items[Math.floor(next() * items.length)]!;
  const pieces = ['"', "\\", ":", ",", "{", "}", "[", "]", " ", "\n", "\u0001", "a", "\\u00"];
  const value = (depth: number): unknown => {
    const kind = next();
    if (depth > 3 || kind < 0.3) {
      return pick([
        () => "x".repeat(64 * 1024 + Math.floor(next() * 20_000)),
        () => `${"z".repeat(70_000)}${pick(['"', "\\", "\n", "\u00e9", "/"])}`,
        () => "short",
        () => Math.floor(next() * 1e6) / 100,
        () => pick([true, false, null]),
      ])();
    }
    if (kind < 0.65) {
      return Array.from({ length: 1 + Math.floor(next() * 3) }, () => value(depth + 1));
    }
    const object: Record<string, unknown> = {};
    for (let i = Math.floor(next() * 4); i >= 0; i--) {
      object[pick(["a", "b", "id", "1"])] = value(depth + 1);
    }
    return object;
  };
  let taken = 0;
  for (let round = 0; round < 150; round++) {
    const whole = JSON.stringify({ m: value(1) }, null, next() < 0.5 ? 1 : undefined);
    const texts = [whole];
    for (let cut = 0; cut < 3; cut++) {
      const at = Math.floor(next() * whole.length);
      texts.push(
        pick([
          () => whole.slice(0, at) + pick(pieces) + whole.slice(at),
          () => whole.slice(0, at) + whole.slice(at + 1),
          () => whole.slice(0, at) + pick(pieces) + whole.slice(at + 1),
        ])(),
      );
    }
    for (const text of texts) {
      const value = parseLarge(encoder.encode(text));
      if (value === undefined) continue;
      taken++;
      const expected = JSON.parse(text); // throws if parseLarge took broken JSON
      assert.equal(JSON.stringify(value), JSON.stringify(expected), `round ${round}`);
    }
  }
  assert.ok(taken > 100, `most whole messages taken (${taken})`);
});
