// The bounded event store on its own: ids, ordered replay per stream, both bounds, and refusing a
// resume whose replay would have a gap.

import assert from "node:assert/strict";
import { BoundedEventStore } from "../src/downstream/event_store.ts";
import type { JSONRPCMessage } from "../src/jsonrpc.ts";

const note = (n: number): JSONRPCMessage => ({
  jsonrpc: "2.0",
  method: "notifications/progress",
  params: { progressToken: "t", progress: n },
});

async function replay(store: BoundedEventStore, lastEventId: string): Promise<number[]> {
  const seen: number[] = [];
  await store.replayEventsAfter(lastEventId, {
    send: (_id, message) => {
      seen.push((message as unknown as { params: { progress: number } }).params.progress);
      return Promise.resolve();
    },
  });
  return seen;
}

Deno.test("event store: replays one stream's later events in order, skipping priming", async () => {
  const store = new BoundedEventStore({ maxEvents: 100, maxBytes: 1 << 20 });
  const priming = await store.storeEvent("a", {} as JSONRPCMessage);
  const ids: string[] = [];
  for (let n = 1; n <= 5; n++) {
    ids.push(await store.storeEvent(n % 2 ? "a" : "b", note(n)));
  }
  assert.match(priming, /^a:\d+$/);
  assert.deepEqual(await replay(store, priming), [1, 3, 5]);
  assert.deepEqual(await replay(store, ids[0]!), [3, 5]);
  assert.deepEqual(await replay(store, ids[1]!), [4]);
  assert.ok(store.knows(priming));
  assert.ok(!store.knows("c:1"), "a stream never seen");
  assert.ok(!store.knows("garbage"));
});

Deno.test("event store: the oldest events go first past either bound", async () => {
  const byCount = new BoundedEventStore({ maxEvents: 3, maxBytes: 1 << 20 });
  for (let n = 1; n <= 10; n++) await byCount.storeEvent("s", note(n));
  assert.equal(byCount.size, 3);
  const big = {
    jsonrpc: "2.0",
    method: "notifications/message",
    params: { data: "x".repeat(1000) },
  };
  const byBytes = new BoundedEventStore({ maxEvents: 1000, maxBytes: 5000 });
  for (let n = 0; n < 20; n++) await byBytes.storeEvent("s", big as JSONRPCMessage);
  assert.ok(byBytes.size <= 5 && byBytes.size >= 4, `held ${byBytes.size} events of ~1 KB`);
});

Deno.test("event store: a resume from before dropped events is refused, not replayed with a gap", async () => {
  const store = new BoundedEventStore({ maxEvents: 5, maxBytes: 1 << 20 });
  const ids: string[] = [];
  for (let n = 1; n <= 10; n++) ids.push(await store.storeEvent("s", note(n)));
  assert.ok(!store.knows(ids[0]!), "events 2-5 are gone: the replay would skip them");
  assert.ok(!store.knows(ids[3]!), "event 5 is gone");
  assert.ok(store.knows(ids[4]!), "everything after event 5 is held");
  assert.deepEqual(await replay(store, ids[4]!), [6, 7, 8, 9, 10]);
  for (let n = 11; n <= 20; n++) await store.storeEvent("t", note(n));
  // A quiet stream whose events other streams pushed out: a client that saw its last event
  // resumes with nothing to replay; one that missed some is refused.
  assert.ok(store.knows(ids[9]!), "nothing after event 10 was ever sent on s");
  assert.deepEqual(await replay(store, ids[9]!), []);
  assert.ok(!store.knows(ids[8]!), "event 10 is gone");
  // Tombstones are bounded too (maxEvents of them): long-gone streams are forgotten.
  for (let n = 21; n <= 40; n++) await store.storeEvent(`u${n}`, note(n));
  assert.ok(!store.knows(ids[9]!), "forgotten after 5 more streams ended");
});

Deno.test("event store: a stream seen again after its tombstone went refuses resumes from before", async () => {
  const store = new BoundedEventStore({ maxEvents: 2, maxBytes: 1 << 20 });
  const old = await store.storeEvent("_GET_stream", note(1));
  for (let n = 2; n <= 8; n++) await store.storeEvent(`r${n}`, note(n));
  // The GET stream's id is reused for the session's life: its next event starts it anew.
  const next = await store.storeEvent("_GET_stream", note(9));
  assert.ok(!store.knows(old), "events 2-8 of other streams say nothing of what it missed");
  assert.ok(store.knows(next));
});
