// serve's own Streamable HTTP transport by hand, for the rules a conforming client never breaks:
// Accept, protocol versions, one GET stream, batch bounds, a second initialize, DELETE, quick
// answers as JSON, the priming event by protocol version, batches answered on one stream, and 202
// for notifications.

import assert from "node:assert/strict";
import { fixtureCommand, runCli, startServe } from "./support/cli.ts";
import { initializeJson, textOf } from "./support/client.ts";
import { messageOf, parseSse, type SseEvent } from "./support/sse.ts";
import { waitFor } from "./support/wait.ts";

const faulty = fixtureCommand("faulty_stdio.ts");
const POST_HEADERS = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
};

type Message = Record<string, unknown>;

async function readAll(response: Response): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  for await (const event of parseSse(response.body!)) events.push(event);
  return events;
}

async function rpcError(response: Response, status: number): Promise<string> {
  assert.equal(response.status, status);
  const body = await response.json() as { error: { code: number; message: string } };
  return `${body.error.code} ${body.error.message}`;
}

/** An initialized session at `protocol`, driven by fetch. */
async function open(url: URL, protocol: string) {
  const response = await fetch(url, {
    method: "POST",
    headers: POST_HEADERS,
    body: initializeJson(protocol, 0),
  });
  const id = response.headers.get("mcp-session-id")!;
  const opening = await readAll(response);
  const headers = (extra: Record<string, string> = {}) => ({
    ...POST_HEADERS,
    "mcp-session-id": id,
    "mcp-protocol-version": protocol,
    ...extra,
  });
  const post = (body: unknown, extra: Record<string, string> = {}) =>
    fetch(url, { method: "POST", headers: headers(extra), body: JSON.stringify(body) });
  const initialized = await post({ jsonrpc: "2.0", method: "notifications/initialized" });
  assert.equal(initialized.status, 202, "notifications alone get 202");
  assert.equal(await initialized.text(), "");
  return { id, opening, headers, post };
}

const echo = (id: number | string, text: string): Message => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name: "echo", arguments: { text } },
});

const sleep = (id: number | string, ms: number): Message => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name: "sleep", arguments: { ms } },
});

Deno.test("serve /mcp --stream-after: an answer ready in time is one JSON body; 0 always streams", async (t) => {
  await t.step(
    "--stream-after 10s: initialize and a call are JSON, with the session id",
    async () => {
      // A window no loaded machine misses, so the test does not depend on timing.
      await using proxy = await startServe(["--stream-after", "10s"], faulty);
      const session = await open(proxy.mcpUrl, "2025-11-25");
      assert.equal(session.opening.length, 1, "one message, no priming event");
      assert.equal(session.opening[0]?.id, undefined, "a JSON body has no event id");
      assert.equal(messageOf(session.opening[0]!)?.id, 0, "initialize was answered");
      const response = await session.post(echo(1, "a"));
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), "application/json");
      assert.equal(response.headers.get("mcp-session-id"), session.id);
      const answer = await response.json() as Message;
      assert.equal(answer.id, 1);
      assert.equal(textOf(answer.result), "a");
      // Past the window, the same POST becomes a stream: priming event first.
      const slow = await session.post(sleep(2, 300));
      assert.equal(slow.headers.get("content-type"), "application/json", "300 ms is within 10 s");
      await slow.body?.cancel();
    },
  );

  await t.step("--stream-after 0: even a quick answer comes on a stream", async () => {
    await using proxy = await startServe(["--stream-after", "0"], faulty);
    const session = await open(proxy.mcpUrl, "2025-11-25");
    assert.equal(session.opening[0]?.data, "", "the initialize stream opens with priming");
    const response = await session.post(echo(1, "b"));
    assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
    const events = await readAll(response);
    assert.equal(events.length, 2);
    assert.equal(events[0]?.data, "");
    assert.equal(textOf(messageOf(events[1]!)?.result), "b");
  });

  await t.step("a bad value is a usage error naming the flag", async () => {
    const result = await runCli(["serve", "--stream-after", "soon", "--", "true"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--stream-after/);
  });
});

Deno.test("serve /mcp: the transport's rules, by hand", async (t) => {
  await using proxy = await startServe([], faulty);
  const url = proxy.mcpUrl;

  await t.step(
    "2025-11-25: a call that takes a while gets a stream, opened by a priming event",
    async () => {
      const session = await open(url, "2025-11-25");
      const response = await session.post(sleep(1, 300));
      assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
      const events = await readAll(response);
      assert.equal(events.length, 2);
      assert.equal(events[0]?.data, "");
      assert.match(events[0]?.id ?? "", /:\d+$/);
      assert.ok(events[1]?.id, "the answer has an event id");
      assert.equal(messageOf(events[1]!)?.id, 1);
    },
  );

  await t.step("2025-03-26: no priming event, the answer comes first", async () => {
    const session = await open(url, "2025-03-26");
    const response = await session.post(sleep(1, 300));
    assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
    const events = await readAll(response);
    assert.equal(events.length, 1);
    assert.equal(messageOf(events[0]!)?.id, 1);
  });

  await t.step(
    "POSTs held at different times each become a stream when their time is up",
    async () => {
      const session = await open(url, "2025-03-26");
      const first = session.post(sleep(1, 400));
      // Two quick round trips later (a few ms), a second slow call: held while the first's time
      // runs, it is due after the first.
      for (const id of [2, 3]) await (await session.post(echo(id, "quick"))).body?.cancel();
      const second = session.post(sleep(4, 400));
      for (const [id, response] of [[1, await first], [4, await second]] as const) {
        assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/, `${id}`);
        const events = await readAll(response);
        assert.equal(messageOf(events.at(-1)!)?.id, id);
      }
    },
  );

  await t.step("a batch is answered on one stream, which ends after the last answer", async () => {
    const session = await open(url, "2025-06-18");
    const response = await session.post([
      echo("x", "one"),
      {
        jsonrpc: "2.0",
        method: "notifications/progress",
        params: { progressToken: 1, progress: 1 },
      },
      echo("y", "two"),
    ]);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("mcp-session-id"), session.id);
    const answers = (await readAll(response)).map(messageOf).filter((m) => m !== undefined);
    const byId = new Map(answers.map((message) => [message.id, textOf(message.result)]));
    assert.deepEqual(Object.fromEntries(byId), { x: "one", y: "two" });
  });

  await t.step(
    "a request id in flight cannot be reused, nor repeated in a batch (400)",
    async () => {
      const session = await open(url, "2025-11-25");
      const first = await session.post(sleep(4, 300));
      const reason = "-32600 Invalid Request: id 4 is already used by a request in flight " +
        "(request ids must not be reused within a session)";
      assert.equal(await rpcError(await session.post(echo(4, "again")), 400), reason);
      assert.equal(
        await rpcError(await session.post([echo(4, "a"), echo(9, "b"), echo(9, "c")]), 400),
        reason,
      );
      assert.equal(
        await rpcError(await session.post([echo(8, "a"), echo(9, "b"), echo(9, "c")]), 400),
        reason.replace("id 4", "id 9"),
      );
      const answers = (await readAll(first)).map(messageOf).filter((m) => m !== undefined);
      assert.deepEqual(answers.map((m) => [m.id, textOf(m.result)]), [[4, "slept 300 ms"]]);
      // Answered, the id is free again; the refused batches reached nothing.
      const again = await session.post([echo(4, "after"), echo(9, "b")]);
      const texts = (await readAll(again)).map(messageOf).filter((m) => m !== undefined)
        .map((m) => [m.id, textOf(m.result)]);
      assert.deepEqual(new Map(texts as [number, string][]), new Map([[4, "after"], [9, "b"]]));
    },
  );

  await t.step("Accept must name both types on POST, event-stream on GET (406)", async () => {
    const session = await open(url, "2025-11-25");
    const post = await session.post(echo(2, "c"), { accept: "application/json" });
    assert.match(await rpcError(post, 406), /^-32000 Not Acceptable: Client must accept both/);
    const get = await fetch(url, { headers: session.headers({ accept: "application/json" }) });
    assert.match(await rpcError(get, 406), /^-32000 Not Acceptable: Client must accept text/);
  });

  await t.step(
    "an unsupported MCP-Protocol-Version is refused on POST, GET and DELETE",
    async () => {
      const session = await open(url, "2025-11-25");
      const bad = { "mcp-protocol-version": "1999-01-01" };
      const expected = /^-32000 Bad Request: Unsupported protocol version: 1999-01-01 \(supported/;
      assert.match(await rpcError(await session.post(echo(3, "d"), bad), 400), expected);
      const get = await fetch(url, {
        headers: session.headers({ ...bad, accept: "text/event-stream" }),
      });
      assert.match(await rpcError(get, 400), expected);
      const del = await fetch(url, { method: "DELETE", headers: session.headers(bad) });
      assert.match(await rpcError(del, 400), expected);
    },
  );

  await t.step(
    "one GET stream per session (409 for a second); a new one once it is gone",
    async () => {
      const session = await open(url, "2025-11-25");
      const abort = new AbortController();
      const first = await fetch(url, {
        headers: session.headers({ accept: "text/event-stream" }),
        signal: abort.signal,
      });
      assert.equal(first.status, 200);
      assert.match(first.headers.get("content-type") ?? "", /^text\/event-stream/);
      const second = await fetch(url, {
        headers: session.headers({ accept: "text/event-stream" }),
      });
      assert.match(await rpcError(second, 409), /^-32000 Conflict: Only one SSE stream/);
      abort.abort();
      await first.body?.cancel().catch(() => {});
      // The proxy learns of the dropped stream as soon as the runtime reports it.
      let third: Response | undefined;
      await waitFor(async () => {
        third = await fetch(url, { headers: session.headers({ accept: "text/event-stream" }) });
        if (third.status === 200) return true;
        await third.body?.cancel();
        return false;
      });
      await third?.body?.cancel();
    },
  );

  await t.step(
    "a batch over 100 messages, and a second initialize, are refused (400)",
    async () => {
      const session = await open(url, "2025-11-25");
      const batch = Array.from({ length: 101 }, (_, i) => echo(100 + i, "e"));
      assert.match(
        await rpcError(await session.post(batch), 400),
        /^-32600 Invalid Request: Batch must not exceed 100 messages$/,
      );
      const again = await session.post({
        jsonrpc: "2.0",
        id: 9,
        method: "initialize",
        params: {
          protocolVersion: "2025-11-25",
          capabilities: {},
          clientInfo: { name: "t", version: "1" },
        },
      });
      assert.match(
        await rpcError(again, 400),
        /^-32600 Invalid Request: Server already initialized$/,
      );
      const events = await readAll(await session.post(echo(4, "still")));
      assert.equal(textOf(messageOf(events.at(-1)!)?.result), "still", "the session goes on");
    },
  );

  await t.step("DELETE ends the session: 200, then 404 for its id", async () => {
    const session = await open(url, "2025-11-25");
    const del = await fetch(url, { method: "DELETE", headers: session.headers() });
    assert.equal(del.status, 200);
    await del.body?.cancel();
    assert.match(
      await rpcError(await session.post(echo(5, "f")), 404),
      /^-32001 Session not found/,
    );
  });
});

Deno.test("serve /mcp: a cancelled request's stream ends; a held one gets 202", async (t) => {
  const cancel = (requestId: number) => ({
    jsonrpc: "2.0",
    method: "notifications/cancelled",
    params: { requestId, reason: "changed my mind" },
  });
  const hang = (id: number) => ({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: { name: "hang", arguments: {} },
  });

  await t.step("streamed: the stream ends unanswered, instead of staying open", async () => {
    await using proxy = await startServe(["--stream-after", "0"], faulty);
    const session = await open(proxy.mcpUrl, "2025-11-25");
    const call = await session.post(hang(7));
    assert.equal(call.headers.get("content-type"), "text/event-stream");
    const read = readAll(call);
    const cancelled = await session.post(cancel(7));
    assert.equal(cancelled.status, 202);
    const events = await within(read, "the cancelled request's stream to end");
    assert.deepEqual(events.map(messageOf).filter((m) => m !== undefined), [], "no answer");
    // The session goes on.
    const after = await readAll(await session.post(echo(8, "still here")));
    assert.equal(textOf(messageOf(after.at(-1)!)?.result), "still here");
  });

  await t.step("held: the POST gets 202 at once", async () => {
    await using proxy = await startServe(["--stream-after", "60s"], faulty);
    const session = await open(proxy.mcpUrl, "2025-11-25");
    const call = session.post(hang(9));
    // The cancel may only go once the request has reached the proxy: wait for the child to get it.
    await waitFor(async () => {
      const response = await session.post(cancel(9));
      assert.equal(response.status, 202);
      await response.body?.cancel();
      return await Promise.race([
        call.then(() => true),
        new Promise((r) => setTimeout(r, 50, false)),
      ]) as boolean;
    });
    const response = await within(call, "the held POST to be answered");
    assert.equal(response.status, 202);
    assert.equal(await response.text(), "");
  });
});

/** `promise`, or a failure naming `what` after 10 s (a missing end would otherwise hang). */
async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`waited 10 s for ${what}`)), 10_000);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
