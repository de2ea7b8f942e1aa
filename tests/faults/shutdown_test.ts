// Shutdown under load: SIGTERM while 100 requests are in flight, on Streamable HTTP and legacy
// SSE sessions, with children that ignore SIGTERM. Every request gets an answer (here: an error
// saying why), the proxy exits 0 within the grace period, and no process is left behind.

import assert from "node:assert/strict";
import { startServe } from "../support/cli.ts";
import { assertNothingLeft, childrenOf, hostileCommand, uniqueMarker } from "../support/procs.ts";
import { type Message, RawSession } from "../support/raw_session.ts";
import { slowRequest } from "../support/slow_reader.ts";
import { messageOf, parseSse } from "../support/sse.ts";
import { report } from "../support/report.ts";
import { waitFor } from "../support/wait.ts";

const SESSIONS = 4;
const PER_SESSION = 20;
const GRACE_MS = 1000;

/**
 * Reads an SSE body to its end in the background: `arrived` once `progress` progress
 * notifications came; `endpoint` is the legacy SSE endpoint event's data, when there is one.
 */
function track(body: ReadableStream<Uint8Array>, progress: number) {
  const messages: Message[] = [];
  let seen = 0;
  let arrived!: () => void;
  let endpointSeen!: (path: string) => void;
  const endpoint = new Promise<string>((resolve) => (endpointSeen = resolve));
  const all = new Promise<void>((resolve) => (arrived = resolve));
  const done = (async () => {
    for await (const event of parseSse(body)) {
      if (event.event === "endpoint") {
        endpointSeen(event.data);
        continue;
      }
      const message = messageOf(event);
      if (!message) continue;
      messages.push(message);
      if (message.method === "notifications/progress" && ++seen === progress) arrived();
    }
    return messages;
  })();
  return { arrived: all, done, messages, endpoint };
}

/** What the stream said to request `id`: the one response, or a failure if none or several. */
function answerTo(messages: readonly Message[], id: unknown): Message {
  const answers = messages.filter((message) => message.id === id && !("method" in message));
  assert.equal(answers.length, 1, `one answer to ${id}: ${JSON.stringify(answers)}`);
  return answers[0]!;
}

Deno.test("faults/shutdown: SIGTERM with 100 requests in flight answers each, exits within the grace", async () => {
  const marker = uniqueMarker("shutdown");
  await using proxy = await startServe(
    ["--shutdown-grace", `${GRACE_MS}ms`],
    hostileCommand(marker, ["--stubborn"]),
  );
  const proxyPid = proxy.process.pid;
  const call = (id: string) => RawSession.call(id, "work", { ms: 120_000, tag: id }, `p-${id}`);

  // Streamable HTTP: 4 sessions, 20 POSTs each, every call started in its child.
  const posts: Array<{ id: string; stream: ReturnType<typeof track> }> = [];
  for (let s = 0; s < SESSIONS; s++) {
    const session = await RawSession.open(proxy.mcpUrl);
    for (let n = 0; n < PER_SESSION; n++) {
      const id = `s${s}-${n}`;
      const response = await session.post(call(id));
      assert.equal(response.status, 200);
      posts.push({ id, stream: track(response.body!, 1) });
    }
  }

  // Legacy SSE: one session, 20 calls, all answers on its one stream.
  const sse = await fetch(proxy.sseUrl, { headers: { accept: "text/event-stream" } });
  const stream = track(sse.body!, PER_SESSION);
  const endpoint = new URL(await stream.endpoint, proxy.url);
  const post = async (message: Message) => {
    const response = await fetch(endpoint, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(message),
    });
    await response.body?.cancel();
    assert.equal(response.status, 202);
  };
  await post({
    jsonrpc: "2.0",
    id: "init",
    method: "initialize",
    params: {
      protocolVersion: "2024-11-05",
      capabilities: {},
      clientInfo: { name: "load", version: "1" },
    },
  });
  await waitFor(() => Promise.resolve(stream.messages.some((message) => message.id === "init")));
  await post({ jsonrpc: "2.0", method: "notifications/initialized" });
  const sseIds = Array.from({ length: PER_SESSION }, (_, n) => `sse-${n}`);
  await Promise.all(sseIds.map((id) => post(call(id))));

  await Promise.all([...posts.map((p) => p.stream.arrived), stream.arrived]);
  const children = (await childrenOf(proxyPid)).map((proc) => proc.pid);
  assert.equal(children.length, SESSIONS + 1);

  const started = Date.now();
  proxy.process.kill("SIGTERM");
  const status = await proxy.process.status;
  const took = Date.now() - started;
  assert.equal(status.code, 0);
  assert.ok(took < GRACE_MS + 2_000, `exited ${took} ms after SIGTERM (grace ${GRACE_MS} ms)`);
  // The children did hold out for the grace period, and were killed after it.
  const ignored = () => proxy.stderr.filter((line) => /\] ignoring SIGTERM$/.test(line)).length;
  await waitFor(() => Promise.resolve(ignored() === SESSIONS + 1), 2_000);

  // Every one of the 100 got exactly one answer, and it says why.
  const streams = await Promise.all(posts.map(({ stream }) => stream.done));
  const sseMessages = await stream.done;
  const answered = [
    ...posts.map(({ id }, i) => [id, streams[i]!] as const),
    ...sseIds.map((id) => [id, sseMessages] as const),
  ];
  const total = answered.length;
  const lost =
    answered.filter(([id, messages]) =>
      messages.filter((message) => message.id === id && !("method" in message)).length !== 1
    ).length;
  await report({ case: "SIGTERM with 100 requests in flight", faults: 1, requests: total, lost });
  assert.equal(total, SESSIONS * PER_SESSION + PER_SESSION);
  for (const [id, messages] of answered) {
    const answer = answerTo(messages, id);
    const error = answer.error as { code: number; message: string } | undefined;
    assert.ok(error, JSON.stringify(answer));
    assert.equal(error.code, -32000);
    assert.equal(error.message, "mcp-proxy is shutting down");
  }
  await proxy.stop();
  await assertNothingLeft(marker, { parent: proxyPid });
});

Deno.test("faults/shutdown: SIGTERM while a client reads nothing still exits within the grace", async () => {
  const marker = uniqueMarker("shutdown-stuck");
  await using proxy = await startServe(
    ["--shutdown-grace", `${GRACE_MS}ms`],
    hostileCommand(marker),
  );
  const proxyPid = proxy.process.pid;
  const session = await RawSession.open(proxy.mcpUrl);
  // 32 MB for a reader that never reads past the response head: more than the sockets hold.
  using reader = await slowRequest(proxy.mcpUrl, {
    method: "POST",
    headers: session.headers(),
    body: JSON.stringify(RawSession.call("flood", "flood", { mb: 32, kb: 16 }, "flood")),
  });
  assert.equal(reader.status, 200, reader.head);
  await proxy.waitForLine(/\] flooded 32 MB$/);
  const started = Date.now();
  proxy.process.kill("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const status = await Promise.race([
    proxy.process.status,
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), GRACE_MS + 3_000);
    }),
  ]);
  clearTimeout(timer);
  const took = Date.now() - started;
  assert.ok(status, `still running ${took} ms after SIGTERM (grace ${GRACE_MS} ms)`);
  assert.equal(status.code, 0);
  assert.ok(took < GRACE_MS + 2_000, `exited ${took} ms after SIGTERM (grace ${GRACE_MS} ms)`);
  await proxy.stop();
  await assertNothingLeft(marker, { parent: proxyPid });
});
