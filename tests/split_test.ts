// The benchmark's line splitter (tests/fixtures/split.ts), which its stdio ends and the bare hops
// read with: the same pieces whatever the chunks, as text and as bytes.

import assert from "node:assert/strict";
import { split, splitBytes } from "./fixtures/split.ts";

const encoder = new TextEncoder();

/** `bytes` cut at every position in `cuts`, as a stream of chunks. */
async function* chunked(bytes: Uint8Array, cuts: number[]): AsyncGenerator<Uint8Array> {
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    yield bytes.slice(from, cut);
    from = cut;
  }
}

async function pieces(text: string, blank: boolean, cuts: number[]) {
  const bytes = encoder.encode(text);
  const texts: string[] = [];
  for await (const piece of split(chunked(bytes, cuts), blank)) texts.push(piece);
  const raw: string[] = [];
  for await (const piece of splitBytes(chunked(bytes, cuts), blank)) {
    raw.push(new TextDecoder().decode(piece));
  }
  return { texts, raw };
}

Deno.test("split: lines and blank-line events, however the chunks cut them", async () => {
  // Multi-byte characters (2, 3 and 4 bytes) and separators fall on chunk edges for some cut.
  const lines = `{"a":"\u00e9\u20ac\u{1f600}"}\n\n{"b":${"x".repeat(70_000)}}\nlast, unended`;
  const events = `event: message\ndata: \u00e9\n\nid: 2\ndata: ${"y".repeat(1000)}\n\n\ndata: z\n`;
  const bytes = encoder.encode(lines).length;
  for (const cuts of [[], [1], [9, 10, 11, 12, 13], [15, 16], [17, 18], [65_536], [bytes - 3]]) {
    const line = await pieces(lines, false, cuts);
    const expected = [`{"a":"\u00e9\u20ac\u{1f600}"}`, "", `{"b":${"x".repeat(70_000)}}`];
    assert.deepEqual(line.texts, expected, `lines cut at ${cuts}`);
    assert.deepEqual(line.raw, expected, `lines as bytes cut at ${cuts}`);
    const event = await pieces(events, true, cuts);
    // An event is what comes before its blank line's newline: its own last newline included.
    const expectedEvents = ["event: message\ndata: \u00e9\n", `id: 2\ndata: ${"y".repeat(1000)}\n`];
    assert.deepEqual(event.texts, expectedEvents, `events cut at ${cuts}`);
    assert.deepEqual(event.raw, expectedEvents, `events as bytes cut at ${cuts}`);
  }
});
