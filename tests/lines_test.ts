// pumpLines, the framing of our stdin and of every child's stdout and stderr: the same lines
// however reads cut the bytes (inside characters, line breaks and byte order marks), from a
// reader and from a byte stream, and with several streams putting long lines together at once.

import assert from "node:assert/strict";
import { type ByteReader, pumpLines } from "../src/lines.ts";

const encoder = new TextEncoder();

/** The lines `bytes` holds, read in one piece. */
function expected(bytes: Uint8Array): string[] {
  const text = new TextDecoder().decode(bytes);
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines.map((line) => line.endsWith("\r") ? line.slice(0, -1) : line);
}

/** The pieces of `bytes` that cutting at `cuts` makes (none empty). */
function pieces(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const ends = [...cuts, bytes.length];
  return ends.map((end, i) => bytes.subarray(i === 0 ? 0 : ends[i - 1], end))
    .filter((piece) => piece.length > 0);
}

/** A reader giving `bytes` in the pieces `cuts` makes, one per read (as much as fits). */
function reader(bytes: Uint8Array, cuts: number[]): ByteReader {
  const queue = pieces(bytes, cuts);
  return {
    read(buffer: Uint8Array) {
      const piece = queue.shift();
      if (piece === undefined) return Promise.resolve(null);
      const n = Math.min(piece.length, buffer.length);
      buffer.set(piece.subarray(0, n));
      if (n < piece.length) queue.unshift(piece.subarray(n));
      return Promise.resolve(n);
    },
  };
}

/** A byte stream giving `bytes` in the pieces `cuts` makes. */
function stream(bytes: Uint8Array, cuts: number[]): ReadableStream<Uint8Array> {
  const queue = pieces(bytes, cuts);
  return new ReadableStream({
    type: "bytes",
    pull(controller) {
      const piece = queue.shift();
      if (piece === undefined) {
        controller.close();
        // A read into a buffer of its own (pumpLines reads so) ends only once answered.
        return controller.byobRequest?.respond(0);
      }
      controller.enqueue(piece.slice());
    },
  });
}

async function lines(source: ByteReader | ReadableStream<Uint8Array>): Promise<string[]> {
  const got: string[] = [];
  await pumpLines(source, (line) => got.push(line));
  return got;
}

Deno.test("pumpLines: the same lines wherever one cut falls, from a reader and a stream", async () => {
  const texts = [
    '\ufeff{"a":"\u00e9\u20ac\u{1f600}"}\r\n{"b":2}\n',
    '{"x":"\u{1f600}\u00e9"}\n\n{"y":"\u20ac"}',
    "\ufeff\ufeffone\ntwo\r\n\ufeffthree",
    "no newline at all \u00e9",
    "\r\n\n\u20ac\n",
  ];
  for (const text of texts) {
    const bytes = encoder.encode(text);
    const want = expected(bytes);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const where = `${JSON.stringify(text)} cut at ${cut}`;
      assert.deepEqual(await lines(reader(bytes, [cut])), want, where);
      assert.deepEqual(await lines(stream(bytes, [cut])), want, where);
    }
    // Every byte read alone.
    const every = [...Array(bytes.length).keys()].slice(1);
    assert.deepEqual(await lines(reader(bytes, every)), want, JSON.stringify(text));
  }
});

Deno.test("pumpLines: long lines over many reads, several streams at once, then a short one", async () => {
  // Each stream's long lines, of characters of 1 to 4 bytes, cut every 1000 bytes (so inside
  // characters), are put together while the other streams put theirs together too.
  const long = (seed: string, length: number) => seed.repeat(Math.ceil(length / seed.length));
  const streams = ["a", "\u00e9b", "\u20acc", "\u{1f600}d"].map((seed, i) => {
    const text = `${long(seed, 300_000 + i)}\n{"short":${i}}\n${long(seed, 70_000)}\r\n` +
      `${long(seed, 5_000_000)}`; // the last, larger than the shared buffer kept, has no newline
    const bytes = encoder.encode(text);
    const cuts = [];
    for (let at = 1000; at < bytes.length; at += 1000) cuts.push(at);
    return { want: expected(bytes), source: reader(bytes, cuts) };
  });
  const got = await Promise.all(streams.map(({ source }) => lines(source)));
  for (const [i, { want }] of streams.entries()) {
    assert.equal(got[i]!.length, want.length);
    for (const [n, line] of want.entries()) assert.ok(got[i]![n] === line, `stream ${i} line ${n}`);
  }
  // The shared buffer was given back: a line spanning reads after them is whole too.
  const bytes = encoder.encode(`${long("\u00e9", 100_000)}\nend`);
  assert.deepEqual(await lines(reader(bytes, [7, 50_001, 150_000])), expected(bytes));
});

Deno.test("pumpLines: lines from the large size on go to onLarge as bytes; the ones it declines, as text", async () => {
  const long = (seed: string, length: number) => seed.repeat(Math.ceil(length / seed.length));
  const taken = `{"take":"${long("a", 200_000)}"}`;
  const declined = `{"decline":"${long("\u00e9", 100_000)}"}`;
  const text = `${taken}\r\n{"short":1}\n${declined}\n${long("b", 99_999)}\n${taken}`;
  const bytes = encoder.encode(text);
  for (
    const cuts of [
      [1000, 150_000, 200_010, 300_000],
      [...Array(600).keys()].map((i) => i * 777),
    ]
  ) {
    const got: string[] = [];
    const large: string[] = [];
    await pumpLines(
      reader(bytes, cuts.filter((cut) => cut > 0)),
      (line) => got.push(line),
      undefined,
      {
        large: 100_000,
        take: (line) => {
          const text = new TextDecoder().decode(line);
          if (text.startsWith('{"decline"')) return false;
          large.push(text);
          return true;
        },
      },
    );
    // The bytes keep their CR (as whitespace for a JSON parser); the text lines lose it.
    assert.deepEqual(large, [`${taken}\r`, taken]);
    assert.deepEqual(got, ['{"short":1}', declined, long("b", 99_999)]);
  }
});
