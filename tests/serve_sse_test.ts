// serve over legacy SSE (GET /sse + POST /message), end to end: the real CLI spawns a child per SSE
// session, the SDK SSE client drives every feature through it, and raw fetch checks the wire.

import assert from "node:assert/strict";
import { INITIALIZE } from "./support/raw_session.ts";
import { fixtureCommand, startServe } from "./support/cli.ts";
import { connectSse, textOf } from "./support/client.ts";
import { checkCatalog, checkRoundTrips, ROUND_TRIP_CAPABILITIES } from "./support/features.ts";
import { EventReader } from "./support/sse.ts";
import { health, waitFor } from "./support/wait.ts";

const everything = fixtureCommand("everything_stdio.ts");
const faulty = fixtureCommand("faulty_stdio.ts");
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

Deno.test("serve SSE: carries tools, prompts, resources and completions", async () => {
  await using proxy = await startServe([], everything);
  await using client = await connectSse(proxy.sseUrl);
  await checkCatalog(client);
});

Deno.test("serve SSE: progress, logging, subscriptions, sampling and elicitation", async () => {
  await using proxy = await startServe([], everything);
  await using client = await connectSse(proxy.sseUrl, { capabilities: ROUND_TRIP_CAPABILITIES });
  await checkRoundTrips(client);
});

Deno.test("serve SSE: a child per SSE session; closing the client ends it", async () => {
  await using proxy = await startServe([], faulty);
  const a = await connectSse(proxy.sseUrl);
  const b = await connectSse(proxy.sseUrl);
  const whoami = async (client: typeof a) =>
    JSON.parse(textOf(await client.callTool({ name: "whoami", arguments: {} }))) as {
      pid: number;
      calls: number;
    };
  // Interleaved, concurrently: each client sees only its own child and its own counter.
  const [a1, b1] = await Promise.all([whoami(a), whoami(b)]);
  const [a2, b2] = await Promise.all([whoami(a), whoami(b)]);
  const a3 = await whoami(a);
  assert.notEqual(a1.pid, b1.pid, "two SSE sessions share no child");
  assert.deepEqual([a1.pid, a2.pid, a3.pid], [a1.pid, a1.pid, a1.pid]);
  assert.deepEqual([b1.pid, b2.pid], [b1.pid, b1.pid]);
  assert.deepEqual([a1.calls, a2.calls, a3.calls], [1, 2, 3]);
  assert.deepEqual([b1.calls, b2.calls], [1, 2]);
  const echoed = await b.callTool({ name: "echo", arguments: { text: "only b" } });
  assert.equal(textOf(echoed), "only b");

  const during = await health(proxy.url);
  assert.equal(during.children, 2);
  assert.deepEqual(during.sessions, { streamable: 0, sse: 2 });

  // Closing a client drops its GET stream: that session and its child end, the other lives on.
  await a.close();
  await waitFor(async () => (await health(proxy.url)).children === 1);
  assert.deepEqual((await health(proxy.url)).sessions, { streamable: 0, sse: 1 });
  assert.deepEqual(await whoami(b), { pid: b1.pid, calls: 3 });

  await b.close();
  await waitFor(async () => (await health(proxy.url)).children === 0);
  assert.deepEqual((await health(proxy.url)).sessions, { streamable: 0, sse: 0 });
});

Deno.test("serve SSE: the wire: endpoint event, 202, answers on the stream", async (t) => {
  await using proxy = await startServe([], faulty);

  await t.step("GET /sse opens with an endpoint event naming the session", async () => {
    const response = await fetch(proxy.sseUrl, { headers: { accept: "text/event-stream" } });
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
    const events = new EventReader(response);
    try {
      const first = await events.next();
      assert.equal(first.event, "endpoint");
      const match = first.data.match(/^\/message\?sessionId=(.+)$/);
      assert.ok(match, `endpoint data is /message?sessionId=<uuid> (got ${first.data})`);
      assert.match(match[1]!, UUID);
      assert.deepEqual((await health(proxy.url)).sessions, { streamable: 0, sse: 1 });
    } finally {
      await events.cancel();
    }
    await waitFor(async () => (await health(proxy.url)).sessions.sse === 0);
  });

  await t.step("POST /message answers 202; the response arrives on the stream", async () => {
    const response = await fetch(proxy.sseUrl);
    const events = new EventReader(response);
    try {
      const endpoint = new URL((await events.next()).data, proxy.url);
      await postAccepted(endpoint, {
        jsonrpc: "2.0",
        id: "init-1",
        method: "initialize",
        params: {
          protocolVersion: "2024-11-05",
          capabilities: {},
          clientInfo: { name: "raw", version: "1.0.0" },
        },
      });
      const answer = await events.next();
      assert.equal(answer.event ?? "message", "message");
      const message = JSON.parse(answer.data);
      assert.equal(message.id, "init-1");
      assert.equal(message.result.serverInfo.name, "faulty");
      assert.deepEqual((await health(proxy.url)).sessions, { streamable: 0, sse: 1 });
    } finally {
      await events.cancel();
    }
    // Dropping the stream ends the session and its child.
    await waitFor(async () => (await health(proxy.url)).children === 0);
    assert.deepEqual((await health(proxy.url)).sessions, { streamable: 0, sse: 0 });
  });

  await t.step("POST /message with an unknown sessionId is 404 with a JSON-RPC error", async () => {
    const unknown = crypto.randomUUID();
    const response = await postJson(
      new URL(`/message?sessionId=${unknown}`, proxy.url),
      { jsonrpc: "2.0", id: 1, method: "ping" },
    );
    assert.equal(response.status, 404);
    assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
    const body = await response.json();
    assert.equal(body.jsonrpc, "2.0");
    assert.equal(body.id, null);
    assert.equal(body.error.code, -32001);
    assert.match(body.error.message, new RegExp(unknown));
  });

  await t.step("POST /message without sessionId is 400", async () => {
    const response = await postJson(new URL("/message", proxy.url), {
      jsonrpc: "2.0",
      id: 1,
      method: "ping",
    });
    assert.equal(response.status, 400);
    const body = await response.json();
    assert.equal(body.jsonrpc, "2.0");
    assert.equal(typeof body.error.code, "number");
    assert.match(body.error.message, /sessionId/);
  });

  await t.step("POST /message with malformed JSON is 400 with -32700", async () => {
    const response = await fetch(proxy.sseUrl);
    const events = new EventReader(response);
    try {
      const endpoint = new URL((await events.next()).data, proxy.url);
      const posted = await fetch(endpoint, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"jsonrpc": "2.0", "id": 1, "method": ',
      });
      assert.equal(posted.status, 400);
      const body = await posted.json();
      assert.equal(body.jsonrpc, "2.0");
      assert.equal(body.id, null);
      assert.equal(body.error.code, -32700);
      // The session survives a bad POST.
      await postAccepted(endpoint, { jsonrpc: "2.0", id: 7, method: "ping" });
      assert.deepEqual(JSON.parse((await events.next()).data), {
        jsonrpc: "2.0",
        id: 7,
        result: {},
      });
    } finally {
      await events.cancel();
    }
  });

  await t.step(
    "a request reusing the id of one in flight is refused; the first is answered",
    async () => {
      const response = await fetch(proxy.sseUrl);
      const events = new EventReader(response);
      try {
        const endpoint = new URL((await events.next()).data, proxy.url);
        const call = {
          jsonrpc: "2.0",
          id: 5,
          method: "tools/call",
          params: { name: "sleep", arguments: { ms: 300 } },
        };
        for (const body of [INITIALIZE, call, call]) await postAccepted(endpoint, body);
        const messages = [];
        for (let i = 0; i < 3; i++) messages.push(JSON.parse((await events.next()).data));
        assert.ok(messages.some((m) => m.id === "init" && m.result), "initialize is answered");
        // The refusal comes at once, the call's answer after its 300 ms.
        const [refusal, answer] = messages.filter((m) => m.id === 5);
        assert.deepEqual(refusal, {
          jsonrpc: "2.0",
          id: 5,
          error: {
            code: -32600,
            message: "Invalid Request: id 5 is already used by a request in flight " +
              "(request ids must not be reused within a session)",
          },
        });
        assert.deepEqual(answer.result.content, [{ type: "text", text: "slept 300 ms" }]);
        // Once answered, its id is free again.
        await postAccepted(endpoint, { jsonrpc: "2.0", id: 5, method: "ping" });
        assert.deepEqual(JSON.parse((await events.next()).data), {
          jsonrpc: "2.0",
          id: 5,
          result: {},
        });
      } finally {
        await events.cancel();
      }
    },
  );

  await t.step("GET /message is 405", async () => {
    const response = await fetch(new URL("/message?sessionId=x", proxy.url));
    assert.equal(response.status, 405);
    assert.equal(response.headers.get("allow"), "POST");
    const body = await response.json();
    assert.equal(body.error.code, -32000);
  });

  await waitFor(async () => (await health(proxy.url)).children === 0);
});

/** POSTs to a session's /message endpoint, which takes it with 202 (answers come on the stream). */
async function postAccepted(url: URL, body: unknown): Promise<void> {
  const posted = await postJson(url, body);
  assert.equal(posted.status, 202);
  await posted.body?.cancel();
}

function postJson(url: URL, body: unknown): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}
