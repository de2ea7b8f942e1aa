// The event-stream parser of our Streamable HTTP client: what the HTML standard says a stream
// means, whatever the chunks it arrives in.

import assert from "node:assert/strict";
import { readEvents, type SseEvent, SseParser, Stop } from "../src/upstream/sse_parser.ts";

function parse(chunks: string[]): { events: SseEvent[]; lastEventId?: string; retryMs?: number } {
  const events: SseEvent[] = [];
  const parser = new SseParser((event) => events.push(event));
  for (const chunk of chunks) parser.push(chunk);
  return { events, lastEventId: parser.lastEventId, retryMs: parser.retryMs };
}

const CASES: Array<[string, string, SseEvent[], { id?: string; retry?: number }]> = [
  ["one event", "event: message\ndata: {}\n\n", [{ event: "message", data: "{}" }], {}],
  ["no event field means message", "data: x\n\n", [{ event: "message", data: "x" }], {}],
  ["CRLF line ends", "data: a\r\n\r\ndata: b\r\n\r\n", [
    { event: "message", data: "a" },
    { event: "message", data: "b" },
  ], {}],
  ["CR line ends", "data: a\r\rdata: b\r\r", [
    { event: "message", data: "a" },
    { event: "message", data: "b" },
  ], {}],
  ["data lines join with LF", 'data: {"a":\ndata: 1}\n\n', [
    { event: "message", data: '{"a":\n1}' },
  ], {}],
  ["comments and unknown fields are skipped", ": keepalive\nfoo: bar\ndata: x\n\n", [
    { event: "message", data: "x" },
  ], {}],
  ["no space after the colon", "data:x\n\n", [{ event: "message", data: "x" }], {}],
  ["only one space is removed", "data:  x\n\n", [{ event: "message", data: " x" }], {}],
  ["an event without data is not dispatched", "id: 7\n\n", [], { id: "7" }],
  ["a priming event (empty data) is dispatched empty", "id: s:1\ndata: \n\n", [
    { event: "message", data: "" },
  ], { id: "s:1" }],
  ["the id persists; retry must be digits", "id: 1\nretry: 250\ndata: a\n\nretry: x\n\n", [
    { event: "message", data: "a" },
  ], { id: "1", retry: 250 }],
  ["an id with NUL is ignored", "id: 1\n\nid: a\0b\n\n", [], { id: "1" }],
  ["a field name alone", "data\n\n", [{ event: "message", data: "" }], {}],
  ["other event types", "event: endpoint\ndata: /m?s=1\n\n", [
    { event: "endpoint", data: "/m?s=1" },
  ], {}],
  ["a leading BOM", "\ufeffdata: x\n\n", [{ event: "message", data: "x" }], {}],
  ["an unfinished event is not dispatched", "data: x\n", [], {}],
  ["the id of an unfinished event does not count yet", "id: 1\ndata: a\n\nid: 2\ndata: b", [
    { event: "message", data: "a" },
  ], { id: "1" }],
];

Deno.test("sse parser: every case, whole and split at every point", async (t) => {
  for (const [name, stream, events, { id, retry }] of CASES) {
    await t.step(name, () => {
      const whole = parse([stream]);
      assert.deepEqual(whole.events, events);
      assert.equal(whole.lastEventId, id);
      assert.equal(whole.retryMs, retry);
      for (let at = 1; at < stream.length; at++) {
        const split = parse([stream.slice(0, at), stream.slice(at)]);
        assert.deepEqual(split.events, events, `split at ${at}`);
      }
      const byChar = parse([...stream]);
      assert.deepEqual(byChar.events, events, "one character at a time");
    });
  }
});

Deno.test("sse parser: a 4 MB line in 64 KiB chunks is joined once, intact", () => {
  const data = "x".repeat(4 * 1024 * 1024);
  const stream = `data: ${data}\n\n`;
  const chunks: string[] = [];
  for (let at = 0; at < stream.length; at += 65_536) chunks.push(stream.slice(at, at + 65_536));
  const { events } = parse(chunks);
  assert.equal(events.length, 1);
  assert.equal(events[0]!.data.length, data.length);
  assert.equal(events[0]!.data, data);
});

/** A byte stream of `chunks`, then either its end or (`open`) nothing more until cancelled. */
function byteStream(chunks: Uint8Array[], open = false) {
  const state = { cancelled: false };
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      if (!open) controller.close();
    },
    cancel() {
      state.cancelled = true;
    },
  });
  return { body, state };
}

Deno.test("sse readEvents: bytes split inside a character, and one leading BOM dropped", async () => {
  const bytes = new TextEncoder().encode("\ufeffdata: caf\u00e9 \u2603\n\ndata: \ufeffok\n\n");
  // Every split point: a chunk may end inside the BOM, the e-acute or the snowman.
  for (let at = 1; at < bytes.length; at++) {
    const events: SseEvent[] = [];
    const { body } = byteStream([bytes.slice(0, at), bytes.slice(at)]);
    assert.equal(await readEvents(body, new SseParser((event) => events.push(event))), undefined);
    assert.deepEqual(events, [
      { event: "message", data: "caf\u00e9 \u2603" },
      { event: "message", data: "\ufeffok" },
    ], `split at ${at}`);
  }
});

Deno.test("sse readEvents: long lines over many reads, CR, LF and CRLF ends wherever reads cut", async () => {
  const stream = (long: string) =>
    `\ufeffevent: big\r\ndata: ${long}\r\ndata: second\r\r: a comment\ndata: ${long}\n\n` +
    "data: tail\r\n\r\ndata: never dispatched";
  const want = (long: string) => [
    { event: "big", data: `${long}\nsecond` },
    { event: "message", data: long },
    { event: "message", data: "tail" },
  ];
  const read = async (bytes: Uint8Array, ends: number[]) => {
    const pieces = ends.map((end, i) => bytes.slice(i === 0 ? 0 : ends[i - 1], end));
    const events: SseEvent[] = [];
    const { body } = byteStream(pieces.filter((piece) => piece.length > 0));
    assert.equal(await readEvents(body, new SseParser((event) => events.push(event))), undefined);
    return events;
  };
  // Short lines: cut once at every byte, and read a byte at a time.
  const short = "\u00e9\u20ac\u{1f600}x";
  const bytes = new TextEncoder().encode(stream(short));
  for (let at = 0; at <= bytes.length; at++) {
    assert.deepEqual(await read(bytes, [at, bytes.length]), want(short), `cut at ${at}`);
  }
  const every = [...Array(bytes.length).keys()].map((at) => at + 1);
  assert.deepEqual(await read(bytes, every), want(short), "a byte at a time");
  // Lines of 640 KB of 1- to 4-byte characters, in reads of 1000 and of 65,536 bytes.
  const long = short.repeat(64_000);
  const large = new TextEncoder().encode(stream(long));
  for (const size of [1000, 65_536]) {
    const ends = [];
    for (let at = size; at < large.length + size; at += size) ends.push(Math.min(at, large.length));
    const events = await read(large, ends);
    assert.equal(events.length, 3, `reads of ${size}`);
    for (const [i, event] of events.entries()) {
      assert.ok(
        event.event === want(long)[i]!.event && event.data === want(long)[i]!.data,
        `${size}`,
      );
    }
  }
});

Deno.test("sse parser: an event's one long data line stays in the pieces it came in, joined only when read", () => {
  const long = "x".repeat(100_000) + "\u00e9".repeat(100_000);
  const cut = (text: string, size: number) => {
    const chunks = [];
    for (let at = 0; at < text.length; at += size) chunks.push(text.slice(at, at + size));
    return chunks;
  };
  for (const size of [1, 3, 5, 7, 1000, 65_536]) {
    const chunks = size === 1 ? [] : cut(`data:${long}\n\ndata: ${long}\r\n\r`, size);
    if (size === 1) {
      // The field name itself split over pieces.
      chunks.push("d", "a", "t", "a", ":", " ", ...cut(long, 65_536), "\n\n");
    }
    const { events } = parse(chunks);
    assert.equal(events.length, size === 1 ? 1 : 2, `pieces of ${size}`);
    for (const event of events) {
      assert.ok(event.pieces, `pieces of ${size}`);
      assert.ok(event.pieces.every((piece) => piece.length <= Math.max(size, 65_536)));
      assert.equal(event.pieces.join(""), long);
      assert.equal(event.data, long);
      assert.equal(event.event, "message");
    }
  }
  // A long line that is a second data line, a comment or another field: read as before.
  const { events } = parse([
    "event: e\ndata: a\n",
    ...cut(`data: ${long}\n: ${long}\nid: ${long}\n`, 65_536),
    "\n",
    ...cut(`data: ${long}\n`, 65_536),
    "data: b\n\n",
  ]);
  assert.deepEqual(events, [
    { event: "e", data: `a\n${long}` },
    { event: "message", data: `${long}\nb` },
  ]);
});

Deno.test("sse readEvents: an event ended by CRs alone is dispatched at once, on an open stream", async () => {
  const encoder = new TextEncoder();
  for (const long of ["short", "\u00e9".repeat(100_000)]) {
    // The line spans two reads; the second holds its end and the blank line, as CRs only.
    const events: SseEvent[] = [];
    const { body } = byteStream([encoder.encode(`data: ${long}`), encoder.encode("!\r\r")], true);
    const parser = new SseParser((event) => events.push(event));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const held = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("the event was held back")), 2000);
    });
    try {
      const done = () => events.length === 1;
      assert.equal(await Promise.race([readEvents(body, parser, { done }), held]), undefined);
    } finally {
      clearTimeout(timer);
    }
    assert.deepEqual(events, [{ event: "message", data: `${long}!` }]);
  }
});

Deno.test("sse readEvents: a Stop ends a read that waits, and cancels the stream", async () => {
  const events: SseEvent[] = [];
  const { body, state } = byteStream([new TextEncoder().encode("data: a\n\n")], true);
  const stop = new Stop();
  // Stopped later, while the next read waits on a stream that sends nothing more.
  const parser = new SseParser((event) => void events.push(event));
  const stopping = setTimeout(() => stop.stop(), 20);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error("the read did not end")), 5000);
  });
  try {
    assert.equal(await Promise.race([readEvents(body, parser, { stop }), hung]), undefined);
  } finally {
    clearTimeout(stopping);
    clearTimeout(timer);
  }
  assert.deepEqual(events, [{ event: "message", data: "a" }]);
  assert.equal(state.cancelled, true);
  assert.equal(stop.onStop, undefined);
});
