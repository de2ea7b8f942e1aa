// serve --stateless, end to end: one warm child serves every request, JSON-RPC ids and progress
// tokens are rewritten so concurrent clients never cross, and a crashed child is replaced.

import assert from "node:assert/strict";
import { fixtureCommand, startServe } from "./support/cli.ts";
import { connectHttp, connectSse, textOf } from "./support/client.ts";
import {
  Client,
  CreateMessageRequestSchema,
  LoggingMessageNotificationSchema,
  StreamableHTTPClientTransport,
} from "./support/sdk.ts";
import { checkCancellation } from "./support/features.ts";
import { messageOf, parseSse } from "./support/sse.ts";
import { health, waitFor } from "./support/wait.ts";

const everything = fixtureCommand("everything_stdio.ts");
const faulty = fixtureCommand("faulty_stdio.ts");
const SESSION_HEADER = "mcp-session-id";
const ACCEPT = "application/json, text/event-stream";
/** A lost or misrouted answer fails the test in seconds instead of hanging it. */
const TIMEOUT_MS = 10_000;
const QUICK = { timeout: TIMEOUT_MS };

interface Whoami {
  pid: number;
  calls: number;
}

Deno.test("serve --stateless: 20 concurrent clients share one warm child", async () => {
  await using proxy = await startServe(["--stateless"], faulty);
  // The child is started ahead of the first request.
  await waitFor(async () => (await health(proxy.url)).children === 1);

  const sessionHeaders: string[] = [];
  const statuses = new Set<number>();
  const recordingFetch = async (input: string | URL, init?: RequestInit) => {
    const response = await fetch(input, init);
    statuses.add(response.status);
    const id = response.headers.get(SESSION_HEADER);
    if (id !== null) sessionHeaders.push(id);
    return response;
  };

  const results = await Promise.all(Array.from({ length: 20 }, async (_, n) => {
    const client = new Client({ name: `stateless-${n}`, version: "1.0.0" });
    const transport = new StreamableHTTPClientTransport(proxy.mcpUrl, { fetch: recordingFetch });
    await client.connect(transport);
    try {
      assert.equal(client.getServerVersion()?.name, "faulty");
      assert.equal(transport.sessionId, undefined, "stateless answers carry no session id");
      const echoes: string[] = [];
      const pids: number[] = [];
      for (let i = 0; i < 3; i++) {
        const [echo, who] = await Promise.all([
          client.callTool(
            { name: "echo", arguments: { text: `client ${n} call ${i}` } },
            undefined,
            QUICK,
          ),
          client.callTool({ name: "whoami", arguments: {} }, undefined, QUICK),
        ]);
        echoes.push(textOf(echo));
        pids.push((JSON.parse(textOf(who)) as Whoami).pid);
      }
      const { tools } = await client.listTools(undefined, QUICK);
      assert.ok(tools.some((tool) => tool.name === "echo"));
      return { n, echoes, pids };
    } finally {
      await client.close();
    }
  }));

  for (const { n, echoes } of results) {
    assert.deepEqual(echoes, [0, 1, 2].map((i) => `client ${n} call ${i}`));
  }
  const pids = new Set(results.flatMap((result) => result.pids));
  assert.equal(pids.size, 1, `one shared child served everyone (pids ${[...pids]})`);
  assert.deepEqual(sessionHeaders, [], "no response carried Mcp-Session-Id");
  assert.ok(statuses.has(200) && statuses.has(202), `statuses seen: ${[...statuses]}`);

  // The shared counter saw every whoami: 20 clients x 3 calls, then this one.
  const last = await rawCall(proxy.mcpUrl, 1, "whoami", {});
  const who = JSON.parse(textOf(last.message.result)) as Whoami;
  assert.equal(who.pid, [...pids][0]);
  assert.equal(who.calls, 61);

  const after = await health(proxy.url);
  assert.equal(after.mode, "stateless");
  assert.equal(after.children, 1);
  assert.deepEqual(after.sessions, { streamable: 0, sse: 0 });
});

Deno.test("serve --stateless: raw requests get their own ids back and no session", async () => {
  await using proxy = await startServe(["--stateless"], faulty);
  // Two clients using the same JSON-RPC id at once still each get their own answer.
  const [a, b] = await Promise.all([
    rawCall(proxy.mcpUrl, 1, "echo", { text: "from a" }),
    rawCall(proxy.mcpUrl, 1, "echo", { text: "from b" }),
  ]);
  assert.equal(a.message.id, 1);
  assert.equal(b.message.id, 1);
  assert.equal(textOf(a.message.result), "from a");
  assert.equal(textOf(b.message.result), "from b");
  const c = await rawCall(proxy.mcpUrl, "str-id", "echo", { text: "from c" });
  assert.equal(c.message.id, "str-id");
  assert.equal(textOf(c.message.result), "from c");
  for (const { headers } of [a, b, c]) assert.equal(headers.get(SESSION_HEADER), null);
});

Deno.test("serve --stateless: GET and DELETE on /mcp are 405", async () => {
  await using proxy = await startServe(["--stateless"], faulty);
  for (const method of ["GET", "DELETE"]) {
    const response = await fetch(proxy.mcpUrl, {
      method,
      headers: { accept: "text/event-stream", [SESSION_HEADER]: crypto.randomUUID() },
    });
    assert.equal(response.status, 405, `${method} /mcp`);
    assert.equal(response.headers.get("allow"), "POST");
    assert.equal(response.headers.get(SESSION_HEADER), null);
    const body = await response.json();
    assert.equal(body.jsonrpc, "2.0");
    assert.equal(body.error.code, -32000);
  }
  assert.equal((await health(proxy.url)).children, 1);
});

Deno.test("serve --stateless: progress notifications reach the caller", async () => {
  await using proxy = await startServe(["--stateless"], everything);
  await using client = await connectHttp(proxy.mcpUrl);
  const progress: number[] = [];
  const done = await client.callTool(
    { name: "test_tool_with_progress", arguments: {} },
    undefined,
    { onprogress: (p) => progress.push(p.progress) },
  );
  assert.equal(textOf(done), "Tool with progress executed successfully");
  assert.deepEqual(progress, [0, 50, 100]);
  const simple = await client.callTool({ name: "test_simple_text", arguments: {} });
  assert.equal(textOf(simple), "This is a simple text response for testing.");
});

Deno.test("serve --stateless: a crash fails the call; a fresh child serves next", async () => {
  await using proxy = await startServe(["--stateless"], faulty);
  await using client = await connectHttp(proxy.mcpUrl);
  const before = JSON.parse(textOf(await client.callTool({ name: "whoami", arguments: {} })));

  const crash = client.callTool({ name: "crash", arguments: { code: 3 } }, undefined, QUICK);
  const crashed = await crash.then(() => undefined, (error: Error & { code?: number }) => error);
  assert.ok(crashed instanceof Error, "the call waiting on the crashed child fails");
  assert.equal(crashed.code, -32000);
  assert.match(crashed.message, /exited with code 3/);
  await proxy.waitForLine(/exited with code 3/);

  // Nobody re-initializes: the proxy initializes the new child itself, with the first client's
  // initialize, before forwarding this bare tools/call.
  const raw = await rawCall(proxy.mcpUrl, 41, "whoami", {});
  assert.equal(raw.status, 200);
  assert.equal(raw.message.id, 41);
  assert.equal(raw.headers.get(SESSION_HEADER), null);
  const respawned = JSON.parse(textOf(raw.message.result)) as Whoami;
  assert.notEqual(respawned.pid, before.pid, "a fresh child");
  assert.equal(respawned.calls, 1);

  // The SDK client that saw the crash keeps working, on the same new child.
  const again = JSON.parse(textOf(await client.callTool({ name: "whoami", arguments: {} })));
  assert.deepEqual(again, { pid: respawned.pid, calls: 2 });
  const echoed = await client.callTool({ name: "echo", arguments: { text: "still here" } });
  assert.equal(textOf(echoed), "still here");

  // A new client that only initializes also lands on the new child.
  await using fresh = await connectHttp(proxy.mcpUrl);
  assert.equal(fresh.getServerVersion()?.name, "faulty");
  const third = JSON.parse(textOf(await fresh.callTool({ name: "whoami", arguments: {} })));
  assert.deepEqual(third, { pid: respawned.pid, calls: 3 });

  const after = await health(proxy.url);
  assert.equal(after.children, 1);
  assert.deepEqual(after.sessions, { streamable: 0, sse: 0 });
});

Deno.test("serve --stateless: SSE clients share the warm child too", async () => {
  await using proxy = await startServe(["--stateless"], faulty);
  const pids = await Promise.all([0, 1].map(async () => {
    await using client = await connectSse(proxy.sseUrl);
    return JSON.parse(textOf(await client.callTool({ name: "whoami", arguments: {} }))).pid;
  }));
  assert.equal(pids[0], pids[1]);
  assert.equal((await health(proxy.url)).children, 1);
});

Deno.test("serve --stateless: a server that cannot start makes /health 503 and calls fail clearly", async () => {
  await using proxy = await startServe(["--stateless"], ["mcp-proxy-no-such-command"]);
  await proxy.waitForLine(/error: cannot start the shared server: .*command not found/);
  const response = await fetch(`${proxy.url}/health`);
  assert.equal(response.status, 503);
  const report = await response.json();
  assert.equal(report.status, "failing");
  assert.equal(report.server.running, false);
  assert.equal(report.server.startFailed, true);
  assert.match(
    report.server.lastError,
    /cannot start "mcp-proxy-no-such-command": command not found/,
  );
  const error = await connectHttp(proxy.mcpUrl).then(
    () => assert.fail("initialize must fail"),
    (e: Error & { code?: number }) => e,
  );
  assert.equal(error.code, -32000);
  assert.match(error.message, /command not found/);
});

/** POSTs one tools/call with no initialize and no session, and reads its one JSON-RPC answer. */
async function rawCall(
  url: URL,
  id: string | number,
  name: string,
  args: Record<string, unknown>,
): Promise<{ status: number; headers: Headers; message: { id: unknown; result?: unknown } }> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: ACCEPT },
    signal: AbortSignal.timeout(TIMEOUT_MS),
    body: JSON.stringify({
      jsonrpc: "2.0",
      id,
      method: "tools/call",
      params: { name, arguments: args },
    }),
  });
  const text = await response.text();
  const type = response.headers.get("content-type") ?? "";
  let json = text;
  if (type.startsWith("text/event-stream")) {
    const data = text.split("\n").filter((line) => line.startsWith("data:"));
    assert.equal(data.length, 1, `one event on the response stream: ${text}`);
    json = data[0]!.slice(5).trim();
  }
  const message = JSON.parse(json);
  assert.ok("result" in message, `a result, not ${json}`);
  return { status: response.status, headers: response.headers, message };
}

Deno.test("serve --stateless: large messages go on as the bytes they came in, only the id swapped", async () => {
  // An answer: the child writes it with the proxy's id; the client gets the child's bytes with its
  // own id in place.
  await using proxy = await startServe(["--stateless"], faulty);
  const expected = `{"jsonrpc":"2.0", "id":"v1", "result":{"content":` +
    `[{"type":"text", "text":"caf\\u00e9 ${"x".repeat(200 * 1024)}"}]}}`;
  for (const id of ["v1", "v1"]) {
    const { text } = await rawPost(proxy.mcpUrl, {
      jsonrpc: "2.0",
      id,
      method: "tools/call",
      params: { name: "verbatim", arguments: { kb: 200 } },
    });
    assert.ok(text === expected, "the answer as the child wrote it, with the client's id");
  }
  // A request: the child reads the client's bytes with the proxy's id in place of the client's.
  await using raw = await startServe(["--stateless"], fixtureCommand("raw_stdio.ts"));
  const request = `{"jsonrpc":"2.0", "id" : "b1" , "method":"tools/call", "params":{"name":` +
    `"heard", "arguments":{"text":"caf\\u00e9 ${"y".repeat(200 * 1024)}"}}}`;
  const { text } = await rawPost(raw.mcpUrl, request);
  const answer = JSON.parse(text);
  assert.equal(answer.id, "b1");
  const heard: string = answer.result.content[0].text;
  const proxyId = /^\{"jsonrpc":"2\.0", "id" : (\d+) , /.exec(heard)?.[1];
  assert.ok(proxyId, `the proxy's own id, in the same place: ${heard.slice(0, 60)}`);
  assert.ok(heard === request.replace('"b1"', proxyId), "the rest as the client wrote it");
});

/** POSTs `body` (a message, or its text as written) without a session; the one answer's JSON. */
async function rawPost(url: URL, body: unknown): Promise<{ text: string }> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: ACCEPT },
    signal: AbortSignal.timeout(TIMEOUT_MS),
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  if (!(response.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
    return { text };
  }
  const data = text.split("\n").filter((line) => line.startsWith("data: "));
  assert.equal(data.length, 1, "one event on the response stream");
  return { text: data[0]!.slice(6) };
}

Deno.test("serve --stateless: odd messages from the child do not silence it", async () => {
  await using proxy = await startServe(["--stateless"], faulty);
  await using client = await connectHttp(proxy.mcpUrl);
  assert.equal(textOf(await client.callTool({ name: "odd_messages", arguments: {} })), "sent");
  assert.equal(
    textOf(await client.callTool({ name: "echo", arguments: { text: "alive" } })),
    "alive",
  );
});

Deno.test("serve --stateless: messages the server sends on its own never reach a guessed client", async () => {
  await using proxy = await startServe(["--stateless"], everything);
  await using client = await connectHttp(proxy.mcpUrl, {
    capabilities: { sampling: {}, elicitation: {} },
  });
  const logs: unknown[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    logs.push(n.params.data);
  });
  let sampled = 0;
  client.setRequestHandler(CreateMessageRequestSchema, () => {
    sampled++;
    return { role: "assistant", content: { type: "text", text: "no" }, model: "m" };
  });
  await client.callTool({ name: "test_tool_with_logging", arguments: {} });
  assert.deepEqual(logs, [], "log notifications cannot be traced to a client: dropped");
  const sampling = await client.callTool({ name: "test_sampling", arguments: { prompt: "hi" } });
  assert.equal(sampled, 0);
  assert.equal(sampling.isError, true);
  assert.match(textOf(sampling), /needs a session: stateless mode cannot tell which client/);
});

Deno.test("serve --stateless: a cancellation sent on its own POST reaches the child", async () => {
  await using proxy = await startServe(["--stateless"], faulty);
  await using client = await connectHttp(proxy.mcpUrl);
  await checkCancellation(client);
});

/** The answer to a raw initialize with `params`. */
async function rawInitialize(
  url: URL,
  params: Record<string, unknown>,
): Promise<{ result?: { protocolVersion: string }; error?: { message: string } }> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: ACCEPT },
    signal: AbortSignal.timeout(TIMEOUT_MS),
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params }),
  });
  for await (const event of parseSse(response.body!)) {
    const message = messageOf(event);
    if (message?.id === 1) return message as { result?: { protocolVersion: string } };
  }
  throw new Error("initialize was not answered");
}

const initParams = (protocolVersion: unknown) => ({
  protocolVersion,
  capabilities: {},
  clientInfo: { name: "v", version: "1" },
});

Deno.test("serve --stateless: a refused initialize is not kept for the clients after it", async () => {
  await using proxy = await startServe(["--stateless"], faulty);
  const refused = await rawInitialize(proxy.mcpUrl, initParams(5));
  assert.ok(refused.error, JSON.stringify(refused));
  // Another client's valid initialize is sent as it is, and the server is initialized with it.
  const accepted = await rawInitialize(proxy.mcpUrl, initParams("2025-11-25"));
  assert.equal(accepted.result?.protocolVersion, "2025-11-25", JSON.stringify(accepted));
  const echo = await rawCall(proxy.mcpUrl, 2, "echo", { text: "after a bad client" });
  assert.equal(textOf(echo.message.result), "after a bad client");
});

Deno.test("serve --stateless: each client gets the protocol version it asked for, if older", async () => {
  await using proxy = await startServe(["--stateless"], faulty);
  const versionFor = async (protocolVersion: string) =>
    (await rawInitialize(proxy.mcpUrl, initParams(protocolVersion))).result?.protocolVersion;
  assert.equal(await versionFor("2025-11-25"), "2025-11-25");
  assert.equal(await versionFor("2025-03-26"), "2025-03-26");
  assert.equal(await versionFor("2025-11-25"), "2025-11-25");
});
