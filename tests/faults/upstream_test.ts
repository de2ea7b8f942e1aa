// Faults of the remote upstream, for `serve <url>` and `connect <url>`: a connection reset
// mid-SSE-stream, a server restart that loses every session, 500s, answers slower than
// --timeout, DNS and TLS failures, an SSE server that never sends its `endpoint` event. The
// client must see recovery or a clear error: never a hang, never a silent drop.

import assert from "node:assert/strict";
import { fixturePath, startServe } from "../support/cli.ts";
import {
  connectHttp,
  connectStdio,
  endSession,
  type TestClient,
  textOf,
} from "../support/client.ts";
import { FaultRelay, startEverything, startSilentSse, TcpRelay } from "../support/fault_relay.ts";
import { waitFor } from "../support/wait.ts";

type RpcError = Error & { code?: number };

const SIMPLE = "This is a simple text response for testing.";

function failure(promise: Promise<unknown>, what: string): Promise<RpcError> {
  return promise.then(
    (value) => assert.fail(`${what} must fail, got ${JSON.stringify(value).slice(0, 200)}`),
    (error: RpcError) => error,
  );
}

async function simple(client: TestClient): Promise<string> {
  return textOf(await client.callTool({ name: "test_simple_text", arguments: {} }));
}

/** Calls `wait` with progress; resolves `arrived` once the server has started it. */
function waitCall(
  client: TestClient,
  ms: number,
  timeout = 20_000,
): { arrived: Promise<void>; result: Promise<unknown> } {
  let arrived!: () => void;
  const promise = new Promise<void>((resolve) => (arrived = resolve));
  const result = client.callTool({ name: "wait", arguments: { ms } }, undefined, {
    onprogress: () => arrived(),
    timeout,
  });
  return { arrived: promise, result };
}

/** The two ways in: a local HTTP client through serve <url>, a stdio client through connect. */
const MODES = {
  "serve <url>": async (url: string) => {
    const proxy = await startServe([url]);
    const client = await connectHttp(proxy.mcpUrl).catch(async (error) => {
      await proxy.stop();
      throw error;
    });
    return {
      client,
      [Symbol.asyncDispose]: async () => {
        await endSession(client).catch(() => {});
        assert.equal((await proxy.stop()).code, 0);
      },
    };
  },
  "connect": async (url: string) => {
    const client = await connectStdio([url]);
    return { client, [Symbol.asyncDispose]: async () => await client.close() };
  },
};

Deno.test("faults/upstream: a connection reset mid-SSE-stream is resumed; the call completes", async (t) => {
  await using server = await startEverything();
  for (const [mode, open] of Object.entries(MODES)) {
    await t.step(mode, async () => {
      await using relay = new TcpRelay(server.port);
      await using side = await open(relay.url("/mcp"));
      const before = (await server.stats()).resumes.length;
      const call = waitCall(side.client, 1500);
      await call.arrived;
      assert.ok(relay.reset() >= 1, "the call's stream was open, and is reset");
      const started = Date.now();
      assert.equal(textOf(await call.result), "waited 1500 ms");
      assert.ok(Date.now() - started < 10_000);
      assert.ok((await server.stats()).resumes.length > before, "resumed with Last-Event-ID");
      assert.equal(await simple(side.client), SIMPLE);
    });
  }
});

Deno.test("faults/upstream: serve <url> after a server restart that lost every session", async (t) => {
  await using first = await startEverything();
  const port = first.port;
  await using proxy = await startServe([first.url]);
  const client = await connectHttp(proxy.mcpUrl);
  assert.equal(await simple(client), SIMPLE);

  await t.step("a call while the server is down fails at once, clearly", async () => {
    await first.kill();
    const started = Date.now();
    const error = await failure(simple(client), "a call to a server that is down");
    assert.ok(Date.now() - started < 5_000, `answered in ${Date.now() - started} ms`);
    assert.equal(error.code, -32000, error.message);
    assert.match(error.message, /cannot reach http:\/\/127\.0\.0\.1:\d+.*Connection refused/);
  });

  await using second = await startEverything(port);
  await t.step("the next call starts a new remote session, unnoticed", async () => {
    assert.equal(await simple(client), SIMPLE);
    assert.equal((await second.stats()).initialized, 1);
  });

  await t.step("a call in flight when the session is lost gets an error, not silence", async () => {
    const call = waitCall(client, 30_000, 6_000);
    await call.arrived;
    await second.kill();
    await using third = await startEverything(port);
    const started = Date.now();
    const error = await failure(call.result, "a call the restarted server never heard of");
    const elapsed = Date.now() - started;
    // Not the proxy's --timeout (60 s by default), nor the client's own (-32001).
    assert.equal(error.code, -32000, `${error.message} after ${elapsed} ms`);
    assert.ok(elapsed < 5_000, `answered in ${elapsed} ms`);
    assert.equal(await simple(client), SIMPLE);
    assert.equal((await third.stats()).initialized, 1);
  });
  await endSession(client).catch(() => {});
});

Deno.test("faults/upstream: 500s are clear errors; the session goes on", async (t) => {
  await using server = await startEverything();
  for (const [mode, open] of Object.entries(MODES)) {
    await t.step(`${mode}: a 500 on a call`, async () => {
      await using relay = new FaultRelay(new URL(server.url).origin);
      await using side = await open(relay.url("/mcp"));
      relay.fail(500, "test_simple_text");
      const error = await failure(simple(side.client), "a call answered 500");
      assert.equal(error.code, -32000, error.message);
      // The status is what says what happened (the body is empty, as from a load balancer).
      assert.match(error.message, /\b500\b/);
      assert.equal(relay.failed, 1);
      assert.equal(await simple(side.client), SIMPLE, "the next call goes through");
    });
  }
  await t.step("serve <url>: a 500 on initialize", async () => {
    await using relay = new FaultRelay(new URL(server.url).origin);
    relay.fail(500, "", 10);
    await using proxy = await startServe([relay.url("/mcp")]);
    const error = await failure(connectHttp(proxy.mcpUrl), "initialize answered 500");
    assert.equal(error.code, -32000, error.message);
    assert.match(error.message, /cannot connect to \S+: Streamable HTTP failed: .*500/);
    assert.equal((await fetch(`${proxy.url}/health`)).status, 200, "the proxy is still up");
  });
});

Deno.test("faults/upstream: serve <url> --timeout answers a slow call; the late answer is dropped", async () => {
  await using server = await startEverything();
  await using proxy = await startServe([server.url, "--timeout", "500ms"]);
  const client = await connectHttp(proxy.mcpUrl);
  const stray: string[] = [];
  client.onerror = (error) => stray.push(error.message);
  const started = Date.now();
  const slow = client.callTool({ name: "wait", arguments: { ms: 1500 } }, undefined, {
    timeout: 10_000,
  });
  const error = await failure(slow, "a call slower than --timeout");
  assert.ok(Date.now() - started < 3_000, `answered in ${Date.now() - started} ms`);
  assert.equal(error.code, -32000);
  assert.match(error.message, /no answer from the MCP server within 0.5s \(--timeout\)/);
  await proxy.waitForLine(/no answer to "tools\/call" within 0.5s \(--timeout\); gave up on it/);
  // Progress keeps this one alive past the moment the first one's late answer comes back.
  const call = waitCall(client, 1400);
  assert.equal(textOf(await call.result), "waited 1400 ms");
  assert.ok(Date.now() - started > 1500, "the late answer came meanwhile");
  assert.deepEqual(stray, [], "nothing unasked reached the client");
  assert.equal(await simple(client), SIMPLE);
  await endSession(client);
});

Deno.test("faults/upstream: serve <url> with DNS and TLS failures: clear errors, still serving", async (t) => {
  await t.step("DNS", async () => {
    await using proxy = await startServe(["https://no-such-host.invalid/mcp"]);
    const started = Date.now();
    const error = await failure(connectHttp(proxy.mcpUrl), "initialize to a name with no address");
    assert.ok(Date.now() - started < 10_000);
    assert.equal(error.code, -32000, error.message);
    assert.match(error.message, /cannot reach https:\/\/no-such-host\.invalid: dns error/);
    assert.equal((await fetch(`${proxy.url}/health`)).status, 200);
    assert.ok(!proxy.stderrText.includes("    at "), "no stack trace");
  });
  await t.step("TLS", async () => {
    const cert = await Deno.readTextFile(fixturePath("tls/cert.pem"));
    const key = await Deno.readTextFile(fixturePath("tls/key.pem"));
    await using tls = Deno.serve(
      { hostname: "127.0.0.1", port: 0, cert, key, onListen() {} },
      () => new Response("never reached"),
    );
    await using proxy = await startServe([`https://localhost:${tls.addr.port}/mcp`]);
    const error = await failure(connectHttp(proxy.mcpUrl), "initialize to an untrusted server");
    assert.equal(error.code, -32000, error.message);
    assert.match(
      error.message,
      new RegExp(`cannot reach https://localhost:${tls.addr.port}: .*(certificate|UnknownIssuer)`),
    );
    assert.equal((await fetch(`${proxy.url}/health`)).status, 200);
    assert.ok(!proxy.stderrText.includes("    at "), "no stack trace");
  });
});

Deno.test("faults/upstream: an SSE server that never sends `endpoint`: a clear error in time", async (t) => {
  await using silent = startSilentSse();
  const cases: Array<[string, RegExp]> = [
    [
      "sse-only",
      /SSE failed: no "endpoint" event within 0\.3s \(--transport sse-only: no other transport/,
    ],
    [
      "http-first",
      /Streamable HTTP failed: the POST was answered 405.*; SSE failed: no "endpoint" event within 0\.3s/,
    ],
  ];
  for (const [strategy, expected] of cases) {
    await t.step(`serve <url> --transport ${strategy}`, async () => {
      await using proxy = await startServe([
        silent.url,
        "--transport",
        strategy,
        "--connect-timeout",
        "300ms",
      ]);
      const started = Date.now();
      const error = await failure(connectHttp(proxy.mcpUrl), "initialize");
      assert.ok(Date.now() - started < 5_000, `answered in ${Date.now() - started} ms`);
      assert.equal(error.code, -32000, error.message);
      assert.match(error.message, expected);
      // The stream it gave up on is closed, not left open.
      await waitFor(() => Promise.resolve(silent.open() === 0));
    });
  }
});
