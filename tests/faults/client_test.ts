// Faults of the HTTP clients of `serve`: a client that disconnects mid-stream (the child goes on
// with the call, and the result is replayed with Last-Event-ID), readers that stop reading
// (buffering must stay bounded), clients that never send DELETE (the session timeout reaps them,
// and their children leave the process table).

import assert from "node:assert/strict";
import { startServe } from "../support/cli.ts";
import { connectHttp, endSession, textOf } from "../support/client.ts";
import {
  assertGone,
  assertNothingLeft,
  childrenOf,
  hostileCommand,
  sampleRss,
  uniqueMarker,
} from "../support/procs.ts";
import { messagesOf, RawSession, readAll } from "../support/raw_session.ts";
import { report } from "../support/report.ts";
import { slowRequest } from "../support/slow_reader.ts";
import { EventReader, messageOf, parseSse } from "../support/sse.ts";
import { health, waitFor } from "../support/wait.ts";

const FLOOD_MB = 256;
/** Small messages: the proxy's garbage per message is collected young, so RSS shows what is held. */
const FLOOD_KB = 16;
/** How much more the proxy may hold for a reader that reads nothing (measured: 0 to 35 MB). */
const UNREAD_BOUND_MB = 100;

Deno.test("faults/client: a client gone mid-call: the child finishes it; Last-Event-ID replays the result", async () => {
  const marker = uniqueMarker("gone");
  await using proxy = await startServe([], hostileCommand(marker));
  const proxyPid = proxy.process.pid;
  const session = await RawSession.open(proxy.mcpUrl);
  const abort = new AbortController();
  const response = await session.post(
    RawSession.call("call-1", "work", { ms: 600, tag: "gone-1" }, "p1"),
    abort.signal,
  );
  assert.equal(response.status, 200);
  // Read up to the progress notification (the child has the call), then drop the connection.
  let lastEventId: string | undefined;
  for await (const event of parseSse(response.body!)) {
    if (event.id) lastEventId = event.id;
    if (messageOf(event)?.method === "notifications/progress") break;
  }
  abort.abort();
  assert.ok(lastEventId, "the stream gave event ids");

  // The child was not told to stop: it finishes the call with nobody connected.
  await proxy.waitForLine(/^\[deno \d+\] work gone-1 done$/);
  assert.ok(!proxy.stderrText.includes("work gone-1 cancelled"), proxy.stderrText);

  // Reconnecting after the fact gets what was missed: the result, once, and the stream ends.
  const resumed = await session.resume(lastEventId);
  assert.equal(resumed.status, 200);
  const messages = messagesOf(await readAll(resumed.body!));
  assert.deepEqual(messages.map((message) => message.id), ["call-1"]);
  assert.equal(textOf(messages[0]!.result), "worked gone-1");

  // The session is unharmed.
  const again = await session.post(RawSession.call("call-2", "echo", { text: "still here" }));
  const answer = messagesOf(await readAll(again.body!));
  assert.equal(textOf(answer.at(-1)!.result), "still here");
  assert.equal(await session.delete(), 200);
  assert.equal((await proxy.stop()).code, 0);
  await assertNothingLeft(marker, { parent: proxyPid });
});

Deno.test("faults/client: readers that stop reading: what they leave unread is bounded", async (t) => {
  const marker = uniqueMarker("slow");
  for (const kind of ["Streamable HTTP POST stream", "legacy SSE stream"] as const) {
    await t.step(kind, async () => {
      // The same flood to a reader that keeps up, then to one that reads nothing: the proxy's
      // own cost of the flood (parsing, garbage not yet collected, the event store) shows in
      // both; what it holds for the reader that reads nothing must not grow with the flood.
      const reading = await floodRise(marker, kind, true);
      const stuck = await floodRise(marker, kind, false);
      await report({
        case: `a reader that stops reading (${kind}), ${FLOOD_MB} MB sent`,
        faults: 1,
        sessions: 2,
        peakRssMb: Math.round(stuck.peak),
      });
      assert.ok(
        stuck.rise - reading.rise < UNREAD_BOUND_MB,
        `proxy RSS rose ${stuck.rise} MB with a reader that reads nothing, ${reading.rise} MB ` +
          `with one that keeps up (${FLOOD_MB} MB sent; ${stuck.outcome})`,
      );
    });
  }
  await assertNothingLeft(marker);
});

/**
 * Floods one session's stream (kind) and returns how far the proxy's RSS rose. The reader reads
 * everything as fast as it can, or nothing at all past the response head; either way, other
 * clients must be served meanwhile.
 */
async function floodRise(
  marker: string,
  kind: "Streamable HTTP POST stream" | "legacy SSE stream",
  reads: boolean,
): Promise<{ rise: number; peak: number; outcome: string }> {
  await using proxy = await startServe([], hostileCommand(marker));
  const proxyPid = proxy.process.pid;
  // Warm up the code paths once, so the baseline is not the cold proxy.
  await using warm = await connectHttp(proxy.mcpUrl);
  await warm.callTool({ name: "echo", arguments: { text: "warm" } });
  const baseline = await sampleRss(proxyPid).stop();
  const rss = sampleRss(proxyPid);
  using reader = kind === "legacy SSE stream"
    ? await floodLegacySse(proxy.sseUrl)
    : await floodPostStream(proxy.mcpUrl);
  const drained = reads ? reader.readUntil('"id":"flood"') : undefined;
  // Until the child wrote it all, or stopped being read (it stalls: the proxy pushed back), or
  // its session was dropped: whichever the proxy does with a reader that reads nothing.
  let outcome = "";
  let lastLine = 0;
  let lastChange = Date.now();
  await waitFor(async () => {
    const lines = proxy.stderr.filter((line) => /\] flood(ed| wrote) /.test(line));
    if (lines.length !== lastLine) [lastLine, lastChange] = [lines.length, Date.now()];
    if (lines.some((line) => line.includes(`flooded ${FLOOD_MB} MB`))) outcome = "all sent";
    else if (Date.now() - lastChange > 1_500) outcome = `stalled at ${lines.at(-1) ?? "0 MB"}`;
    else if ((await health(proxy.url)).children < 2) outcome = "the session was ended";
    return outcome !== "";
  }, 30_000);
  await drained;
  // Meanwhile other clients are served.
  await using other = await connectHttp(proxy.mcpUrl);
  assert.equal(textOf(await other.callTool({ name: "echo", arguments: { text: "o" } })), "o");
  const peak = await rss.stop();
  // (Still connected: see shutdown_test.ts for a proxy stopped under a reader that reads nothing.)
  reader[Symbol.dispose]();
  assert.equal((await proxy.stop()).code, 0);
  return { rise: Math.round(peak - baseline), peak, outcome };
}

/** A Streamable HTTP session whose POST of `flood` is never read past the response head. */
async function floodPostStream(url: URL) {
  const session = await RawSession.open(url);
  const reader = await slowRequest(url, {
    method: "POST",
    headers: session.headers(),
    body: JSON.stringify(
      RawSession.call("flood", "flood", { mb: FLOOD_MB, kb: FLOOD_KB }, "flood"),
    ),
  });
  assert.equal(reader.status, 200, reader.head);
  return reader;
}

/** A legacy SSE session whose stream is never read past its head; `flood` POSTed to it. */
async function floodLegacySse(url: URL) {
  const reader = await slowRequest(url, {
    method: "GET",
    headers: { accept: "text/event-stream" },
  });
  assert.equal(reader.status, 200, reader.head);
  // The endpoint event came with the head, or is the next bytes on the wire; then no more reads.
  let endpoint = /data: (\/message\?sessionId=\S+)/.exec(reader.head + reader.rest)?.[1];
  if (!endpoint) endpoint = /data: (\/message\?sessionId=\S+)/.exec(await reader.readSome())?.[1];
  assert.ok(endpoint, "the endpoint event");
  const post = async (message: Record<string, unknown>) => {
    const response = await fetch(new URL(endpoint!, url), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(message),
    });
    await response.body?.cancel();
    assert.equal(response.status, 202);
  };
  await post({
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: {
      protocolVersion: "2024-11-05",
      capabilities: {},
      clientInfo: { name: "slow", version: "1" },
    },
  });
  await post({ jsonrpc: "2.0", method: "notifications/initialized" });
  await post(RawSession.call("flood", "flood", { mb: FLOOD_MB, kb: FLOOD_KB }, "flood"));
  return reader;
}

Deno.test("faults/client: clients that never send DELETE are reaped, children and all", async () => {
  const marker = uniqueMarker("nodelete");
  await using proxy = await startServe(["--session-timeout", "800ms"], hostileCommand(marker));
  const proxyPid = proxy.process.pid;
  // Three Streamable HTTP clients that keep their GET streams open and never say goodbye, and
  // a legacy SSE stream held open by a client that never posts anything.
  const clients = await Promise.all([1, 2, 3].map(() => connectHttp(proxy.mcpUrl)));
  const pids: number[] = [];
  for (const client of clients) {
    pids.push(JSON.parse(textOf(await client.callTool({ name: "whoami", arguments: {} }))).pid);
  }
  const sse = new EventReader(
    await fetch(proxy.sseUrl, { headers: { accept: "text/event-stream" } }),
  );
  assert.equal((await sse.next()).event, "endpoint");
  let ssePid: number | undefined;
  await waitFor(async () => {
    ssePid = (await childrenOf(proxyPid)).find((proc) => !pids.includes(proc.pid))?.pid;
    return ssePid !== undefined;
  });
  const all = [...pids, ssePid!];
  await assertGone(all, proxyPid);
  await waitFor(async () => {
    const state = await health(proxy.url);
    return state.children === 0 && state.sessions.streamable === 0 && state.sessions.sse === 0;
  });
  assert.equal(
    proxy.stderr.filter((line) => /session \S+ idle for \d+s; closed/.test(line)).length,
    4,
  );
  // The held SSE stream was ended, not left open.
  await assert.rejects(sse.next(2_000), /the event stream ended/);

  // A reaped session is gone for its client; new sessions are served.
  await assert.rejects(
    clients[0]!.callTool({ name: "whoami", arguments: {} }),
    /404|Session not found/,
  );
  const fresh = await connectHttp(proxy.mcpUrl);
  assert.equal(textOf(await fresh.callTool({ name: "echo", arguments: { text: "hi" } })), "hi");
  await endSession(fresh);
  for (const client of clients) await client.close();
  assert.equal((await proxy.stop()).code, 0);
  await assertNothingLeft(marker, { parent: proxyPid });
});
