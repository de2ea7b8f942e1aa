// connect, end to end: the SDK client spawns `mcp-proxy connect <url>` as its stdio server, and
// the proxy forwards to real fixture servers on 127.0.0.1 (native Streamable HTTP, SSE only).

import assert from "node:assert/strict";
import { minorFaults, pageBytes } from "../scripts/bench_proc.ts";
import { pumpLines } from "../src/lines.ts";
import { cliCommand, fixtureCommand, fixturePath, runCli, startServe } from "./support/cli.ts";
import { connectStdio, type StdioTestClient, textOf } from "./support/client.ts";
import {
  checkCancellation,
  checkCatalog,
  checkRoundTrips,
  ROUND_TRIP_CAPABILITIES,
} from "./support/features.ts";
import {
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from "./support/sdk.ts";
import { initializeAnswer, type NativeKind, startNative } from "./support/native.ts";
import { messageEvent } from "./support/sse.ts";
import { reserialized, verbatimCall } from "./support/verbatim.ts";
import { waitFor } from "./support/wait.ts";

/**
 * Has `client` answer roots/list only once told to stop (cancelled). The function returned
 * resolves with the reason it was told, or says that it was not told within 5 s.
 */
function rootsCalledOff(client: StdioTestClient): () => Promise<unknown> {
  const stopped = Promise.withResolvers<unknown>();
  client.setRequestHandler(ListRootsRequestSchema, async (_request, extra) => {
    if (!extra.signal.aborted) {
      await new Promise((resolve) => extra.signal.addEventListener("abort", resolve));
    }
    stopped.resolve(extra.signal.reason);
    return { roots: [] };
  });
  return async () => {
    const late = setTimeout(() => stopped.resolve("not called off within 5 s"), 5000);
    try {
      return await stopped.promise;
    } finally {
      clearTimeout(late);
    }
  };
}

Deno.test("connect: the full feature set over Streamable HTTP", async () => {
  await using server = await startNative("http");
  await using client = await connectStdio([server.url], { capabilities: ROUND_TRIP_CAPABILITIES });
  await checkCatalog(client);
  await checkRoundTrips(client);
});

Deno.test("connect: the full feature set over legacy SSE", async () => {
  await using server = await startNative("sse-405");
  await using client = await connectStdio([server.url, "--transport", "sse-only"], {
    capabilities: ROUND_TRIP_CAPABILITIES,
  });
  await checkCatalog(client);
  await checkRoundTrips(client);
});

/** What each strategy does against each kind of server: the transport used, or the failure. */
const MATRIX: Array<[NativeKind, string, RegExp]> = [
  ["http", "http-first", /connected to \S+ over Streamable HTTP$/],
  [
    "http",
    "sse-first",
    /connected to \S+ over Streamable HTTP, after SSE failed: the GET was answered 400/,
  ],
  ["http", "http-only", /connected to \S+ over Streamable HTTP$/],
  [
    "http",
    "sse-only",
    /cannot connect to \S+: SSE failed: the GET was answered 400.*\(--transport sse-only: no other transport was tried\)/,
  ],
  [
    "sse-405",
    "http-first",
    /connected to \S+ over SSE, after Streamable HTTP failed: the POST was answered 405/,
  ],
  ["sse-405", "sse-first", /connected to \S+ over SSE$/],
  [
    "sse-405",
    "http-only",
    /cannot connect to \S+: Streamable HTTP failed: the POST was answered 405.*\(--transport http-only: no other transport was tried\)/,
  ],
  ["sse-405", "sse-only", /connected to \S+ over SSE$/],
  [
    "sse-404",
    "http-first",
    /connected to \S+ over SSE, after Streamable HTTP failed: the POST was answered 404/,
  ],
  ["sse-404", "sse-first", /connected to \S+ over SSE$/],
  [
    "sse-404",
    "http-only",
    /cannot connect to \S+: Streamable HTTP failed: the POST was answered 404/,
  ],
  ["sse-404", "sse-only", /connected to \S+ over SSE$/],
];

Deno.test("connect: every --transport strategy against every kind of server", async (t) => {
  for (const [kind, strategy, expected] of MATRIX) {
    await t.step(`${strategy} against ${kind}`, async () => {
      await using server = await startNative(kind);
      const works = !/cannot connect/.test(expected.source);
      if (works) {
        await using client = await connectStdio([server.url, "--transport", strategy]);
        const result = await client.callTool({ name: "test_simple_text", arguments: {} });
        assert.equal(textOf(result), "This is a simple text response for testing.");
        await waitFor(() => Promise.resolve(client.stderr.some((line) => expected.test(line))));
      } else {
        const error = await connectStdio([server.url, "--transport", strategy]).then(
          () => assert.fail("initialize must fail"),
          (e: Error & { code?: number }) => e,
        );
        assert.equal(error.code, -32000);
        assert.match(error.message, expected);
      }
    });
  }
});

Deno.test("connect: --header values reach the server, ${VAR} from the environment", async () => {
  await using server = await startNative("http");
  await using client = await connectStdio([
    server.url,
    "--header",
    "Authorization: Bearer ${MCP_TEST_TOKEN}",
    "--header",
    "X-Tenant:acme-${MCP_TEST_TENANT}",
    "--header",
    "X-Empty:",
    "--debug",
  ], { env: { MCP_TEST_TOKEN: "t0ken-value", MCP_TEST_TENANT: "eu" } });
  await client.ping();
  const { lastHeaders } = await server.stats();
  assert.equal(lastHeaders["authorization"], "Bearer t0ken-value");
  assert.equal(lastHeaders["x-tenant"], "acme-eu");
  assert.equal(lastHeaders["x-empty"], "");
  assert.equal(lastHeaders["mcp-protocol-version"], "2025-11-25");
  assert.ok(lastHeaders["mcp-session-id"], "the session id is kept and sent");
  assert.ok(!client.stderr.join("\n").includes("t0ken-value"), "header values never reach logs");
});

Deno.test("connect: filtered tools vanish from tools/list and cannot be called", async () => {
  await using server = await startNative("http");
  await using client = await connectStdio([
    server.url,
    "--allow-tool",
    "test_*",
    "--ignore-tool",
    "test_elicitation*",
    "--ignore-tool",
    "test_?ampling",
  ]);
  const names = (await client.listTools()).tools.map((tool) => tool.name);
  assert.ok(names.includes("test_simple_text"));
  assert.ok(!names.includes("wait"), "not allowed by --allow-tool test_*");
  assert.ok(!names.some((name) => name.startsWith("test_elicitation")));
  assert.ok(!names.includes("test_sampling"));
  for (const name of ["wait", "test_sampling", "test_elicitation_sep1034_defaults"]) {
    const error = await client.callTool({ name, arguments: { ms: 1 } }).then(
      () => assert.fail(`${name} must be refused`),
      (e: Error & { code?: number }) => e,
    );
    assert.equal(error.code, -32602);
    assert.match(error.message, new RegExp(`Unknown tool: ${name}`));
  }
  const ok = await client.callTool({ name: "test_simple_text", arguments: {} });
  assert.equal(textOf(ok), "This is a simple text response for testing.");
});

Deno.test("connect: a session the server forgot is re-initialized without the client noticing", async () => {
  await using server = await startNative("http");
  await using client = await connectStdio([server.url]);
  const before = await server.stats();
  assert.equal(before.initialized, 1);
  await server.forget();
  const result = await client.callTool({ name: "test_simple_text", arguments: {} });
  assert.equal(textOf(result), "This is a simple text response for testing.");
  const after = await server.stats();
  assert.equal(after.initialized, 2, "one new session, with the client's own initialize");
  assert.equal(after.sessions, 1);
  assert.ok(
    client.stderr.some((line) => /no longer knows the session; starting a new one/.test(line)),
  );
  // And it keeps working on the new session.
  await client.ping();
});

Deno.test("connect: the upstream dying mid-call answers the call within --timeout", async () => {
  await using server = await startNative("http");
  await using client = await connectStdio([server.url, "--timeout", "1500ms"]);
  let arrived!: () => void;
  const started = new Promise<void>((resolve) => (arrived = resolve));
  const call = client.callTool({ name: "wait", arguments: { ms: 60_000 } }, undefined, {
    onprogress: () => arrived(),
    timeout: 30_000,
  });
  await started;
  await server.kill();
  const began = Date.now();
  const error = await call.then(
    () => assert.fail("the call must fail"),
    (e: Error & { code?: number }) => e,
  );
  assert.ok(Date.now() - began < 10_000, "answered, not left hanging");
  assert.equal(error.code, -32000);
  assert.match(error.message, /no answer from the MCP server within 1.5s \(--timeout\)/);
});

Deno.test("connect: calls started at different times each time out at their own --timeout", async () => {
  await using server = await startNative("http");
  await using client = await connectStdio([server.url, "--timeout", "1s"]);
  const hang = () =>
    client.callTool({ name: "wait", arguments: { ms: 60_000 } }, undefined, { timeout: 10_000 })
      .then(() => assert.fail("the call must fail"), (e: Error) => e);
  const first = hang();
  // A round trip later (a few ms), a second: due after the first, its clock is the next to run.
  await client.ping();
  const second = hang();
  for (const error of [await first, await second]) {
    assert.match(error.message, /no answer from the MCP server within 1s \(--timeout\)/);
  }
});

Deno.test("connect: a host that cannot be reached is one clear line and a JSON-RPC error", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/mcp`;
  listener.close();
  const { code, stdout, stderr } = await rawConnect([url], [INITIALIZE]);
  assert.equal(code, 0);
  const [answer] = stdout.map((line) => JSON.parse(line));
  assert.equal(answer.id, 1);
  assert.equal(answer.error.code, -32000);
  assert.match(
    answer.error.message,
    /^cannot connect to http:\/\/127\.0\.0\.1:\d+\/mcp: Streamable HTTP failed: cannot reach http:\/\/127\.0\.0\.1:\d+: .*Connection refused/,
  );
  const errors = stderr.filter((line) => line.includes("error:"));
  assert.equal(errors.length, 1, stderr.join("\n"));
  assert.ok(!stderr.some((line) => /^\s+at /.test(line)), "no stack trace");
});

Deno.test("connect: a server that does not speak MCP is a clear error", async () => {
  await using site = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("<html>hello</html>", { headers: { "content-type": "text/html" } }),
  );
  const { stdout, stderr } = await rawConnect([`http://127.0.0.1:${site.addr.port}/`], [
    INITIALIZE,
  ]);
  const [answer] = stdout.map((line) => JSON.parse(line));
  assert.equal(answer.error.code, -32000);
  assert.match(answer.error.message, /cannot connect to .*Streamable HTTP failed: .*content type/i);
  assert.ok(!stderr.some((line) => /^\s+at /.test(line)), "no stack trace");
});

Deno.test("connect: stdin EOF answers what was asked, deletes the session and exits 0", async () => {
  await using server = await startNative("http");
  const { code, stdout } = await rawConnect([server.url], [
    INITIALIZE,
    { jsonrpc: "2.0", method: "notifications/initialized" },
    {
      jsonrpc: "2.0",
      id: 2,
      method: "tools/call",
      params: { name: "wait", arguments: { ms: 300 } },
    },
  ]);
  assert.equal(code, 0);
  assert.deepEqual(stdout.map((line) => JSON.parse(line).id), [1, 2]);
  await waitFor(async () => (await server.stats()).deletes === 1);
  assert.equal((await server.stats()).sessions, 0);
});

Deno.test("connect: SIGTERM deletes the session and exits 0", async () => {
  await using server = await startNative("http");
  const proxy = spawnConnect([server.url]);
  const writer = proxy.stdin.getWriter();
  await writer.write(frame(INITIALIZE));
  const lines = linesOf(proxy.stdout);
  assert.equal(JSON.parse(await lines.next()).id, 1);
  proxy.kill("SIGTERM");
  const status = await proxy.status;
  assert.equal(status.code, 0);
  assert.equal((await server.stats()).deletes, 1);
  await writer.close().catch(() => {});
});

Deno.test("connect: only protocol frames reach stdout, even with --debug", async () => {
  await using server = await startNative("http");
  const { stdout, stderr } = await rawConnect([server.url, "--debug"], [
    INITIALIZE,
    { jsonrpc: "2.0", method: "notifications/initialized" },
    { jsonrpc: "2.0", id: 2, method: "tools/list" },
    {
      jsonrpc: "2.0",
      id: 3,
      method: "tools/call",
      params: { name: "test_tool_with_logging", arguments: {} },
    },
    { jsonrpc: "2.0", id: 4, method: "no/such/method" },
  ]);
  assert.ok(stderr.some((line) => line.includes("debug:")), "debug logging was on");
  assert.ok(stdout.length >= 4);
  for (const line of stdout) {
    const message = JSON.parse(line);
    assert.equal(message.jsonrpc, "2.0", line);
  }
  const ids = stdout.map((line) => JSON.parse(line).id).filter((id) => id !== undefined);
  assert.deepEqual(ids.sort(), [1, 2, 3, 4]);
  const unknown = stdout.map((line) => JSON.parse(line)).find((m) => m.id === 4);
  assert.equal(unknown.error.code, -32601, "unknown methods pass through to the server");
});

Deno.test("connect: stdin framing: CRLF, partial writes, multi-megabyte lines, bad JSON", async () => {
  await using server = await startNative("http");
  const proxy = spawnConnect([server.url]);
  const writer = proxy.stdin.getWriter();
  const lines = linesOf(proxy.stdout);
  await writer.write(new TextEncoder().encode(JSON.stringify(INITIALIZE) + "\r\n"));
  assert.equal(JSON.parse(await lines.next()).id, 1);
  await writer.write(frame({ jsonrpc: "2.0", method: "notifications/initialized" }));
  // A 3 MB request, written a few bytes, then 64 KiB at a time.
  const text = "y".repeat(3 * 1024 * 1024);
  const bytes = frame({
    jsonrpc: "2.0",
    id: 2,
    method: "completion/complete",
    params: {
      ref: { type: "ref/prompt", name: "test_prompt_with_arguments" },
      argument: { name: "arg1", value: text },
    },
  });
  await writer.write(bytes.subarray(0, 7));
  for (let at = 7; at < bytes.length; at += 65536) {
    await writer.write(bytes.subarray(at, at + 65536));
  }
  assert.equal(JSON.parse(await lines.next()).id, 2);
  await writer.write(new TextEncoder().encode("this is not json\n"));
  const parseError = JSON.parse(await lines.next());
  assert.equal(parseError.id, null);
  assert.equal(parseError.error.code, -32700);
  await writer.write(frame({ jsonrpc: "2.0", id: 3, method: "ping" }));
  assert.deepEqual(JSON.parse(await lines.next()), { jsonrpc: "2.0", id: 3, result: {} });
  await writer.close();
  assert.equal((await proxy.status).code, 0);
});

const INITIALIZE = {
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: {
    protocolVersion: "2025-11-25",
    capabilities: {},
    clientInfo: { name: "raw", version: "1.0.0" },
  },
};

function frame(message: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(message) + "\n");
}

/** `mcp-proxy connect` spawned by hand, for what the SDK client would hide. */
function spawnConnect(args: readonly string[]): Deno.ChildProcess {
  const [exe, ...prefix] = cliCommand();
  return new Deno.Command(exe!, {
    args: [...prefix, "connect", ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
}

/** Writes `messages`, closes stdin, and collects everything until the process exits. */
async function rawConnect(
  args: readonly string[],
  messages: readonly unknown[],
): Promise<{ code: number; stdout: string[]; stderr: string[] }> {
  const result = await runCli(["connect", ...args], {
    // A string is a line as it is; anything else is serialized.
    stdin: messages.map((message) =>
      (typeof message === "string" ? message : JSON.stringify(message)) + "\n"
    ).join(""),
  });
  const split = (text: string) => text.split("\n").filter((line) => line !== "");
  return { code: result.code, stdout: split(result.stdout), stderr: split(result.stderr) };
}

/** Reads a byte stream one line at a time, each within 10 s. */
function linesOf(stream: ReadableStream<Uint8Array>): { next(): Promise<string> } {
  const queue: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  void pumpLines(stream, (line) => {
    const waiter = waiting.shift();
    if (waiter) waiter(line);
    else queue.push(line);
  }).catch(() => {});
  return {
    next: () => {
      const line = queue.shift();
      if (line !== undefined) return Promise.resolve(line);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no line on stdout within 10 s")), 10_000);
        waiting.push((value) => {
          clearTimeout(timer);
          resolve(value);
        });
      });
    },
  };
}

Deno.test("connect: the server-to-client stream reconnects with Last-Event-ID", async () => {
  await using server = await startNative("http");
  await using client = await connectStdio([server.url]);
  const updates: string[] = [];
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
    updates.push(n.params.uri);
  });
  await client.subscribeResource({ uri: "test://watched-resource" });
  await waitFor(async () => (await server.stats()).gets >= 1);
  // An event with an id on the GET stream gives the client a place to resume from.
  await client.callTool({ name: "test_resource_update", arguments: {} });
  await waitFor(() => Promise.resolve(updates.length === 1));
  const closed = await client.callTool({ name: "close_standalone_stream", arguments: {} });
  assert.equal(textOf(closed), "closed");
  // The fixture asks for retry: 500 ms; the stream comes back, resuming after its last event.
  await waitFor(async () => (await server.stats()).resumes.length >= 1);
  await client.callTool({ name: "test_resource_update", arguments: {} });
  await waitFor(() => Promise.resolve(updates.length === 2));
  assert.deepEqual(updates, ["test://watched-resource", "test://watched-resource"]);
});

Deno.test("connect: progress restarts the --timeout clock", async () => {
  await using server = await startNative("http");
  await using client = await connectStdio([server.url, "--timeout", "700ms"]);
  const result = await client.callTool({ name: "wait", arguments: { ms: 2000 } }, undefined, {
    onprogress: () => {},
  });
  assert.equal(textOf(result), "waited 2000 ms");
});

Deno.test("connect: cancellation and roots pass through (to a server behind serve)", async () => {
  await using backend = await startServe([], fixtureCommand("faulty_stdio.ts"));
  await using client = await connectStdio([backend.mcpUrl.href], {
    capabilities: { roots: { listChanged: true } },
  });
  await checkCancellation(client);
  const roots = [{ uri: "file:///work/project", name: "project" }];
  client.setRequestHandler(ListRootsRequestSchema, () => ({ roots }));
  assert.deepEqual(
    JSON.parse(textOf(await client.callTool({ name: "roots", arguments: {} }))),
    roots,
  );
});

Deno.test("connect: --enable-proxy sends requests through HTTP_PROXY; without it they go direct", async () => {
  await using server = await startNative("http");
  const seen: string[] = [];
  await using forwardProxy = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => {
      seen.push(`${req.method} ${req.url}`);
      const headers = new Headers(req.headers);
      headers.delete("host");
      return fetch(req.url, { method: req.method, headers, body: req.body, redirect: "manual" });
    },
  );
  const env = { HTTP_PROXY: `http://127.0.0.1:${forwardProxy.addr.port}`, NO_PROXY: "" };
  {
    await using direct = await connectStdio([server.url], { env });
    await direct.ping();
    assert.equal(seen.length, 0, "no --enable-proxy: the proxy variables are ignored");
  }
  await using proxied = await connectStdio([server.url, "--enable-proxy"], { env });
  await proxied.ping();
  assert.ok(seen.some((line) => line.startsWith(`POST ${server.url}`)), seen.join("\n"));
});

Deno.test("connect: sse-first falls back when the GET is silent or not an event stream", async () => {
  const silent = () =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(": no endpoint event, ever\n\n"));
      },
    });
  await using site = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (req.method === "GET" && path === "/silent") {
      return new Response(silent(), { headers: { "content-type": "text/event-stream" } });
    }
    if (req.method === "GET") {
      return new Response("<html></html>", { headers: { "content-type": "text/html" } });
    }
    return new Response("no", { status: 405 });
  });
  const base = `http://127.0.0.1:${site.addr.port}`;
  const silentRun = await rawConnect(
    [`${base}/silent`, "--transport", "sse-first", "--connect-timeout", "300ms"],
    [INITIALIZE],
  );
  assert.equal(
    silentRun.stdout.length,
    1,
    `stdout: ${silentRun.stdout}\nstderr: ${silentRun.stderr.join("\n")}`,
  );
  assert.match(
    JSON.parse(silentRun.stdout[0]!).error.message,
    /SSE failed: no "endpoint" event within 0.3s; Streamable HTTP failed: the POST was answered 405/,
  );
  const htmlRun = await rawConnect([`${base}/page`, "--transport", "sse-first"], [INITIALIZE]);
  assert.match(
    JSON.parse(htmlRun.stdout[0]!).error.message,
    /SSE failed: the GET was answered 200 OK with content type "text\/html"; Streamable HTTP failed: the POST was answered 405/,
  );
  assert.ok(htmlRun.stderr.some((line) => /SSE failed .*; trying Streamable HTTP/.test(line)));
});

Deno.test("connect: a 400 falls back only when its body is not a JSON-RPC error", async () => {
  await using site = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (req.method === "GET") return new Response("gone", { status: 404 });
    if (path === "/plain") return new Response("bad request", { status: 400 });
    return Response.json(
      { jsonrpc: "2.0", id: null, error: { code: -32600, message: "Invalid Request: nope" } },
      { status: 400 },
    );
  });
  const base = `http://127.0.0.1:${site.addr.port}`;
  const plain = await rawConnect([`${base}/plain`], [INITIALIZE]);
  assert.match(
    JSON.parse(plain.stdout[0]!).error.message,
    /Streamable HTTP failed: the POST was answered 400 Bad Request; SSE failed: the GET was answered 404/,
  );
  const rpc = await rawConnect([`${base}/rpc`], [INITIALIZE]);
  const message = JSON.parse(rpc.stdout[0]!).error.message;
  assert.match(message, /Streamable HTTP failed: the POST was answered 400 Bad Request/);
  assert.doesNotMatch(message, /SSE/, "a JSON-RPC error is the server speaking MCP: no fallback");
});

Deno.test("connect: DNS and TLS failures are clear; a private CA works with DENO_CERT", async () => {
  const dns = await rawConnect(["https://no-such-host.invalid/mcp"], [INITIALIZE]);
  assert.match(
    JSON.parse(dns.stdout[0]!).error.message,
    /cannot reach https:\/\/no-such-host\.invalid: dns error/,
  );
  await using server = await startNative("http");
  const cert = await Deno.readTextFile(fixturePath("tls/cert.pem"));
  const key = await Deno.readTextFile(fixturePath("tls/key.pem"));
  // HTTPS in front of the native fixture, with a certificate no public CA signed.
  await using tls = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert, key, onListen() {} },
    (req) => {
      const target = new URL(new URL(req.url).pathname, server.url);
      const headers = new Headers(req.headers);
      headers.delete("host");
      return fetch(target, { method: req.method, headers, body: req.body, signal: req.signal });
    },
  );
  const url = `https://localhost:${tls.addr.port}/mcp`;
  const untrusted = await rawConnect([url], [INITIALIZE]);
  assert.match(
    JSON.parse(untrusted.stdout[0]!).error.message,
    new RegExp(
      `cannot reach https://localhost:${tls.addr.port}: .*(certificate|UnknownIssuer)`,
      "i",
    ),
  );
  assert.ok(!untrusted.stderr.some((line) => /^\s+at /.test(line)), "no stack trace");
  await using trusted = await connectStdio([url], {
    env: { DENO_CERT: fixturePath("tls/ca.pem") },
  });
  assert.equal(
    textOf(await trusted.callTool({ name: "test_simple_text", arguments: {} })),
    "This is a simple text response for testing.",
  );
});

Deno.test("connect: a dropped legacy SSE connection gets its new session initialized", async () => {
  await using server = await startNative("sse-405");
  await using client = await connectStdio([server.url, "--transport", "sse-only"]);
  let arrived!: () => void;
  const started = new Promise<void>((resolve) => (arrived = resolve));
  const inFlight = client.callTool({ name: "wait", arguments: { ms: 30_000 } }, undefined, {
    onprogress: () => arrived(),
  });
  await started;
  await server.drop();
  const lost = await inFlight.then(() => assert.fail("lost with the session"), (e: Error) => e);
  assert.match(lost.message, /the server dropped the connection while this request was in flight/);
  await waitFor(async () => (await server.stats()).initialized === 2);
  const result = await client.callTool({ name: "test_simple_text", arguments: {} });
  assert.equal(textOf(result), "This is a simple text response for testing.");
  assert.ok(
    client.stderr.some((line) => /dropped the SSE connection; initializing the new/.test(line)),
  );
});

Deno.test("connect: a legacy SSE stream refused on reconnect fails the call in flight, then recovers", async () => {
  // The server drops the stream while a call is in flight, then refuses to open it again (403):
  // without its stream the session can never answer, so the call is answered now, not at
  // --timeout, and the next request opens a new session once the server lets it.
  let refusing = false;
  const { server, streams, emit, url } = legacySseServer(async (session, message) => {
    if (message.method === "initialize") {
      emit(session, await initializeAnswer(message, session).json());
    } else if (message.method === "tools/call" && session === "s1") {
      refusing = true;
      streams.get(session)!.close();
    } else if (message.id !== undefined) {
      const result = { content: [{ type: "text", text: `ran on ${session}` }] };
      emit(session, { jsonrpc: "2.0", id: message.id, result });
    }
  }, () => refusing);
  await using _server = server;
  await using client = await connectStdio([url, "--transport", "sse-only", "--timeout", "60s"]);
  await failsAtOnce(
    client,
    /the connection to the server was lost while this request was in flight/,
  );
  assert.ok(
    client.stderr.some((line) => /warn: .*the SSE connection to the server is lost/.test(line)),
  );
  refusing = false;
  const result = await client.callTool({ name: "transfer", arguments: {} });
  assert.equal(textOf(result), "ran on s2");
  assert.ok(
    client.stderr.some((line) => /the SSE connection was lost; starting a new one/.test(line)),
  );
});

Deno.test("connect: a question from a legacy SSE connection lost for good is called off at the client", async () => {
  // The server asks roots/list during a call, then drops the stream and refuses it from then on:
  // the call fails at once, and the client is told to stop on the question.
  let refusing = false;
  const { server, streams, emit, url } = legacySseServer(async (session, message) => {
    if (message.method === "initialize") {
      emit(session, await initializeAnswer(message, session).json());
    } else if (message.method === "tools/call") {
      emit(session, { jsonrpc: "2.0", id: 1, method: "roots/list" });
      refusing = true;
      streams.get(session)!.close();
    }
  }, () => refusing);
  await using _server = server;
  await using client = await connectStdio([url, "--transport", "sse-only", "--timeout", "60s"], {
    capabilities: { roots: {} },
  });
  const calledOff = rootsCalledOff(client);
  await failsAtOnce(
    client,
    /the connection to the server was lost while this request was in flight/,
  );
  assert.equal(await calledOff(), "the server's session ended");
});

Deno.test("connect: a question from a legacy SSE session the server replaced is never answered to the new one", async () => {
  // The server asks roots/list (id 1) on session s1, drops the stream, and on the new session s2
  // asks roots/list with id 1 again. The client is told to stop on the first (its session is
  // over); only the answer to the second reaches s2.
  const answered: string[] = [];
  const s2Answered = Promise.withResolvers<void>();
  const question = { jsonrpc: "2.0", id: 1, method: "roots/list" };
  const { server, streams, emit, url } = legacySseServer(async (session, message) => {
    if (message.method === "initialize") {
      emit(session, await initializeAnswer(message, session).json());
    } else if (message.method === undefined) {
      answered.push(`${message.id} on ${session}: ${message.result.roots.length} roots`);
      if (session === "s2") s2Answered.resolve();
    } else if (message.method === "tools/call" && session === "s1") {
      emit(session, question);
      streams.get(session)!.close();
    } else if (message.method === "tools/call") {
      emit(session, question);
      await s2Answered.promise;
      const text = answered.join(", ");
      emit(session, {
        jsonrpc: "2.0",
        id: message.id,
        result: { content: [{ type: "text", text }] },
      });
    }
  });
  await using _server = server;
  await using client = await connectStdio([url, "--transport", "sse-only", "--timeout", "10s"], {
    capabilities: { roots: {} },
  });
  // Both questions are answered once both have come; the first with one root, the second two.
  const both = Promise.withResolvers<void>();
  let questions = 0;
  const stopped: number[] = [];
  client.setRequestHandler(ListRootsRequestSchema, async (_request, extra) => {
    const count = ++questions;
    if (count === 2) both.resolve();
    await both.promise;
    if (extra.signal.aborted) stopped.push(count);
    return { roots: Array.from({ length: count }, (_, i) => ({ uri: `file:///r${i}` })) };
  });
  const lost = await client.callTool({ name: "a", arguments: {} })
    .then(() => assert.fail("lost with the session"), (e: Error) => e);
  assert.match(lost.message, /the server dropped the connection while this request was in flight/);
  const result = await client.callTool({ name: "b", arguments: {} });
  assert.equal(textOf(result), "1 on s2: 2 roots", "s2 has the answer to its own question only");
  assert.deepEqual(answered, ["1 on s2: 2 roots"]);
  // The client was told to stop on the first question: its session is over.
  assert.deepEqual(stopped, [1]);
});

/**
 * A legacy SSE server by hand: each GET /sse opens the next session (s1, s2, ...: an endpoint
 * event, retry 20 ms), refused with 403 while `refuse()`; each POST goes to `onPost` with its
 * session and is answered 202; `emit` sends a message on a session's stream.
 */
function legacySseServer(
  // deno-lint-ignore no-explicit-any
  onPost: (session: string, message: any) => void | Promise<void>,
  refuse: () => boolean = () => false,
) {
  let sessions = 0;
  const streams = new Map<string, ReadableStreamDefaultController<Uint8Array>>();
  const encoder = new TextEncoder();
  const emit = (session: string, message: unknown) =>
    streams.get(session)?.enqueue(messageEvent(message));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    if (req.method === "GET" && url.pathname === "/sse") {
      if (refuse()) return new Response("not now", { status: 403 });
      const session = `s${++sessions}`;
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          streams.set(session, controller);
          controller.enqueue(
            encoder.encode(`retry: 20\nevent: endpoint\ndata: /message?session=${session}\n\n`),
          );
        },
      });
      return new Response(body, { headers: { "content-type": "text/event-stream" } });
    }
    if (req.method !== "POST") return new Response(null, { status: 405 });
    await onPost(url.searchParams.get("session")!, await req.json());
    return new Response(null, { status: 202 });
  });
  return { server, streams, emit, url: `http://127.0.0.1:${server.addr.port}/sse` };
}

Deno.test("connect: a 404 on the GET stream renews the session, subscriptions and log level", async () => {
  await using server = await startNative("http");
  await using client = await connectStdio([server.url]);
  const updates: string[] = [];
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
    updates.push(n.params.uri);
  });
  await client.subscribeResource({ uri: "test://watched-resource" });
  await client.setLoggingLevel("error");
  await waitFor(async () => (await server.stats()).gets >= 1);
  await server.forget();
  // No request from the client: the GET stream's 404 alone starts the new session.
  await waitFor(async () => (await server.stats()).initialized === 2);
  await client.callTool({ name: "test_resource_update", arguments: {} });
  await waitFor(() => Promise.resolve(updates.length === 1));
  const logs: unknown[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    logs.push(n.params.data);
  });
  await client.callTool({ name: "test_tool_with_logging", arguments: {} });
  assert.deepEqual(logs, [], "the restored level (error) still filters info messages");
});

Deno.test("connect: a renewal that fails is tried again on the next request", async () => {
  const native = await startNative("http");
  const port = new URL(native.url).port;
  await using client = await connectStdio([native.url, "--timeout", "5s"]);
  await native.kill();
  const down = await client.callTool({ name: "test_simple_text", arguments: {} }).then(
    () => assert.fail("the server is down"),
    (e: Error) => e,
  );
  assert.match(down.message, /cannot reach|no session|renew|connection/i);
  // The server comes back on the same port, knowing nothing of the old session.
  await using again = await startNativeOn(port);
  const result = await client.callTool({ name: "test_simple_text", arguments: {} });
  assert.equal(textOf(result), "This is a simple text response for testing.");
  assert.equal((await again.stats()).initialized, 1);
});

Deno.test("connect: a response that comes after --timeout gave up is dropped", async () => {
  await using server = await startNative("http");
  const proxy = spawnConnect([server.url, "--timeout", "400ms"]);
  const writer = proxy.stdin.getWriter();
  const lines = linesOf(proxy.stdout);
  await writer.write(frame(INITIALIZE));
  assert.equal(JSON.parse(await lines.next()).id, 1);
  await writer.write(frame({ jsonrpc: "2.0", method: "notifications/initialized" }));
  const call = (id: number, ms: number) => ({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: { name: "wait", arguments: { ms } },
  });
  await writer.write(frame(call(2, 1200)));
  const timedOut = JSON.parse(await lines.next());
  assert.equal(timedOut.id, 2);
  assert.match(timedOut.error.message, /within 0.4s/);
  // Id 3 runs past the moment id 2's late result arrives (progress keeps it alive): everything
  // up to id 3's answer must be progress for id 3, nothing for id 2.
  await writer.write(
    frame({
      ...call(3, 1500),
      params: { ...call(3, 1500).params, _meta: { progressToken: "t3" } },
    }),
  );
  const seen: Array<{ id?: unknown; method?: string }> = [];
  for (;;) {
    const message = JSON.parse(await lines.next());
    seen.push(message);
    if (message.id === 3) break;
  }
  assert.ok(
    seen.every((m) => m.id === 3 || m.method === "notifications/progress"),
    JSON.stringify(seen),
  );
  assert.ok(seen.length > 3, "progress came while id 2's late answer was dropped");
  await writer.close();
  assert.equal((await proxy.status).code, 0);
});

Deno.test("connect: --timeout waits while the client answers an elicitation", async () => {
  await using server = await startNative("http");
  await using client = await connectStdio([server.url, "--timeout", "500ms"], {
    capabilities: ROUND_TRIP_CAPABILITIES,
  });
  client.setRequestHandler(ElicitRequestSchema, async () => {
    await new Promise((resolve) => setTimeout(resolve, 1200)); // a person thinking
    return { action: "accept", content: { username: "ada", email: "ada@example.com" } };
  });
  const result = await client.callTool({
    name: "test_elicitation",
    arguments: { message: "Who?" },
  });
  assert.match(textOf(result), /action=accept/);
});

Deno.test("connect: a question the server takes back lets --timeout run again", async () => {
  // During a call the server asks for roots, cancels the question, and never answers the call:
  // the call fails after --timeout, where a clock left paused for the question would never run.
  const release = Promise.withResolvers<void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    if (req.method === "GET") return new Response(null, { status: 405 });
    if (req.method === "DELETE") return new Response(null, { status: 200 });
    const message = await req.json();
    if (message.method === "initialize") return initializeAnswer(message, "s1");
    if (message.method !== "tools/call") return new Response(null, { status: 202 });
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        const send = (sent: unknown) => controller.enqueue(messageEvent(sent));
        send({ jsonrpc: "2.0", id: 0, method: "roots/list" });
        send({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 0 } });
        await release.promise;
        controller.close();
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  await using _server = server;
  using _release = { [Symbol.dispose]: () => release.resolve() };
  const url = `http://127.0.0.1:${server.addr.port}/mcp`;
  await using client = await connectStdio([url, "--timeout", "1s"], {
    capabilities: { roots: {} },
  });
  // The client answers nothing until the question is taken back (and then nothing at all).
  rootsCalledOff(client);
  const error = await client.callTool({ name: "slow", arguments: {} }, undefined, {
    timeout: 10_000,
  }).then(() => assert.fail("it is never answered"), (e: Error) => e);
  assert.match(error.message, /no answer from the MCP server within 1s \(--timeout\)/);
});

Deno.test("connect: tool globs may contain '-' and other punctuation", async () => {
  await using server = await startNative("http");
  await using client = await connectStdio([
    server.url,
    "--allow-tool",
    "test-*",
    "--allow-tool",
    "wait",
  ]);
  const names = (await client.listTools()).tools.map((tool) => tool.name);
  assert.deepEqual(names, ["wait"]);
});

/** The native HTTP fixture on a given port (to play a server that restarted). */
async function startNativeOn(port: string) {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--allow-net=127.0.0.1", fixturePath("everything_http.ts"), port],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines = linesOf(process.stdout);
  assert.match(await lines.next(), /^listening /);
  return {
    stats: async () => await (await fetch(`http://127.0.0.1:${port}/admin/stats`)).json(),
    [Symbol.asyncDispose]: async () => {
      process.kill("SIGKILL");
      await process.status;
    },
  };
}

/**
 * A server whose first session's GET stream ends at once and, once a tool call has come, meets
 * 404 on reopening (the server forgot the session) while the call's POST waits for the second
 * session to be initialized, then gets `answer(id, session)`.
 */
function forgettingServer(
  answer: (
    id: unknown,
    session: string,
    message: Record<string, unknown>,
  ) => Response | Promise<Response>,
) {
  const calls: string[] = [];
  const notes: string[] = [];
  let sessions = 0;
  let renewed!: () => void;
  const secondSession = new Promise<void>((resolve) => (renewed = resolve));
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      const session = req.headers.get("mcp-session-id");
      const sse = { "content-type": "text/event-stream" };
      if (req.method === "GET") {
        if (session !== "s1") return new Response(new ReadableStream(), { headers: sse });
        return calls.length === 0
          ? new Response("retry: 10\n\n", { headers: sse })
          : new Response("session gone", { status: 404 });
      }
      if (req.method === "DELETE") return new Response(null, { status: 200 });
      const message = await req.json();
      if (message.id === undefined) {
        notes.push(`${message.method} on ${session}`);
        return new Response(null, { status: 202 });
      }
      if (message.method === "initialize") {
        if (++sessions === 2) renewed();
        return initializeAnswer(message, `s${sessions}`);
      }
      // The client's answer to a request of ours.
      if (message.method === undefined) return answer(message.id, session!, message);
      calls.push(`${message.method} on ${session}`);
      if (session === "s1") await secondSession;
      return answer(message.id, session!, message);
    },
  );
  return { server, calls, notes, url: `http://127.0.0.1:${server.addr.port}/mcp` };
}

Deno.test("connect: a call in flight when the session is renewed is answered once, never run twice", async () => {
  // The renewal must let the old session's POST finish, not cut it off and send the call again.
  const { server, calls, url } = forgettingServer((id, session) =>
    Response.json({
      jsonrpc: "2.0",
      id,
      result: { content: [{ type: "text", text: `ran on ${session}` }] },
    })
  );
  await using _server = server;
  await using client = await connectStdio([url]);
  const first = await client.callTool({ name: "transfer", arguments: {} });
  assert.equal(textOf(first), "ran on s1", "the old session's own answer");
  assert.deepEqual(calls, ["tools/call on s1"], "run once");
  // The new session serves the next call.
  const second = await client.callTool({ name: "transfer", arguments: {} });
  assert.equal(textOf(second), "ran on s2");
  assert.deepEqual(calls, ["tools/call on s1", "tools/call on s2"]);
});

Deno.test("connect: cancelling a call that runs on a retired session cancels it there", async () => {
  const hanging = Promise.withResolvers<Response>();
  const { server, calls, notes, url } = forgettingServer(() => hanging.promise);
  await using _server = server;
  // The call's POST is let go when the test ends, so that the server can shut down.
  using _release = { [Symbol.dispose]: () => hanging.resolve(new Response(null, { status: 503 })) };
  await using client = await connectStdio([url, "--timeout", "30s"]);
  // The SDK client gives up after 1.5 s and sends notifications/cancelled for the call.
  const error = await client.callTool({ name: "transfer", arguments: {} }, undefined, {
    timeout: 1500,
  }).then(() => assert.fail("it never answers"), (e: Error) => e);
  assert.match(error.message, /timed out/i);
  await waitFor(() =>
    Promise.resolve(notes.some((note) => note.startsWith("notifications/cancelled")))
  );
  assert.deepEqual(calls, ["tools/call on s1"]);
  assert.deepEqual(
    notes.filter((note) => note.startsWith("notifications/cancelled")),
    ["notifications/cancelled on s1"],
    "to the session that runs it, not the new one",
  );
});

Deno.test("connect: the same request id from a retired and a new session: two requests to the client, each answer to its own session", async () => {
  // Each session's server numbers its requests alone: after a renewal, the retired session's
  // roots/list and the new session's can both be id 0 while the client answers. The new session
  // also cancels its id 0 and asks again (id 1).
  const answered: string[] = [];
  const waiting = new Map<string, (result: { roots: unknown[] }) => void>();
  const release = Promise.withResolvers<undefined>();
  const { server, notes, url } = forgettingServer((id, session, message) => {
    if (message.method === undefined) {
      answered.push(`${JSON.stringify(id)} on ${session}`);
      waiting.get(`${id} on ${session}`)?.(message.result as { roots: unknown[] });
      return new Response(null, { status: 202 });
    }
    // A call asks the client for its roots and says how many it got.
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        const ask = (askId: number) => {
          controller.enqueue(messageEvent({ jsonrpc: "2.0", id: askId, method: "roots/list" }));
          return new Promise<{ roots: unknown[] }>((resolve) =>
            waiting.set(`${askId} on ${session}`, resolve)
          );
        };
        let answer = ask(0);
        if (session === "s2") {
          const params = { requestId: 0, reason: "asking again" };
          controller.enqueue(
            messageEvent({ jsonrpc: "2.0", method: "notifications/cancelled", params }),
          );
          answer = ask(1);
        }
        const result = await Promise.race([answer, release.promise]);
        const text = `${session} has ${result?.roots.length} roots`;
        controller.enqueue(
          messageEvent({ jsonrpc: "2.0", id, result: { content: [{ type: "text", text }] } }),
        );
        controller.close();
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  await using _server = server;
  using _release = { [Symbol.dispose]: () => release.resolve(undefined) };
  await using client = await connectStdio([url, "--timeout", "30s"], {
    capabilities: { roots: {} },
  });
  // Questions are answered once all three have come: they are open at once.
  const all = Promise.withResolvers<void>();
  const ids: unknown[] = [];
  const aborted: unknown[] = [];
  client.setRequestHandler(ListRootsRequestSchema, async (_request, extra) => {
    ids.push(extra.requestId);
    const count = ids.length;
    if (count === 3) all.resolve();
    await all.promise;
    // (The cancellation came before the third question, on the same stream.)
    if (extra.signal.aborted) aborted.push(extra.requestId);
    return { roots: Array.from({ length: count }, (_, i) => ({ uri: `file:///r${i}` })) };
  });
  const first = client.callTool({ name: "a", arguments: {} });
  first.catch(() => {}); // (awaited below, unless an assertion fails first)
  await waitFor(() => Promise.resolve(notes.includes("notifications/initialized on s2")));
  const second = client.callTool({ name: "b", arguments: {} });
  second.catch(() => {});
  await waitFor(() => Promise.resolve(answered.length >= 2));
  assert.equal(new Set(ids).size, 3, `the client saw three distinct ids: ${JSON.stringify(ids)}`);
  assert.deepEqual(answered.sort(), ["0 on s1", "1 on s2"], "each session got its own answer");
  assert.equal(aborted.length, 1, `one question cancelled: ${JSON.stringify(aborted)}`);
  assert.ok(aborted[0] !== 0 && aborted[0] !== 1, "the new session's id 0, not the retired one's");
  assert.match(textOf(await first), /^s1 has [123] roots$/);
  assert.match(textOf(await second), /^s2 has [123] roots$/);
  assert.equal(answered.length, 2, `no answer went twice: ${answered}`);
});

Deno.test("connect: a retired session's late cancellation of a question the client answered reaches no other session", async () => {
  // s1 asks id 1 and has its answer; the new session s2 then asks its own id 1; s1's server
  // cancels its id 1 late. That cancellation must not stop the client answering s2's question.
  // (Not id 0: the SDK client ignores a cancellation of request 0.)
  const answered: string[] = [];
  const waiting = new Map<string, () => void>();
  const signal = (key: string) => new Promise<void>((resolve) => waiting.set(key, resolve));
  const s1Answered = signal("1 on s1");
  // (The client's handler and this server run in the test's process: they can wait on each other.)
  const s2AskedClient = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  const { server, notes, url } = forgettingServer((id, session, message) => {
    if (message.method === undefined) {
      answered.push(`${JSON.stringify(id)} on ${session}`);
      waiting.get(`${id} on ${session}`)?.();
      return new Response(null, { status: 202 });
    }
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        const text = (value: string) => ({ content: [{ type: "text", text: value }] });
        if (session === "s1") {
          controller.enqueue(messageEvent({ jsonrpc: "2.0", id: 1, method: "roots/list" }));
          await s1Answered;
          await s2AskedClient.promise;
          const params = { requestId: 1, reason: "too late" };
          controller.enqueue(
            messageEvent({ jsonrpc: "2.0", method: "notifications/cancelled", params }),
          );
          controller.enqueue(messageEvent({ jsonrpc: "2.0", id, result: text("s1 done") }));
        } else {
          await s1Answered;
          const answer = signal("1 on s2");
          controller.enqueue(messageEvent({ jsonrpc: "2.0", id: 1, method: "roots/list" }));
          const done = await Promise.race([answer.then(() => true), release.promise]);
          if (done) {
            controller.enqueue(messageEvent({ jsonrpc: "2.0", id, result: text("s2 done") }));
          }
        }
        controller.close();
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  await using _server = server;
  using _release = { [Symbol.dispose]: () => release.resolve() };
  await using client = await connectStdio([url, "--timeout", "5s"], {
    capabilities: { roots: {} },
  });
  const firstDone = Promise.withResolvers<void>();
  let questions = 0;
  let secondAborted = false;
  client.setRequestHandler(ListRootsRequestSchema, async (_request, extra) => {
    if (++questions === 2) {
      s2AskedClient.resolve();
      // s1's call ends after its late cancellation, on the same stream: by then it has come.
      await firstDone.promise;
      secondAborted = extra.signal.aborted;
    }
    return { roots: [] };
  });
  const first = client.callTool({ name: "a", arguments: {} });
  await waitFor(() => Promise.resolve(notes.includes("notifications/initialized on s2")));
  const second = client.callTool({ name: "b", arguments: {} });
  second.catch(() => {}); // (awaited below, unless an assertion fails first)
  assert.equal(textOf(await first), "s1 done");
  firstDone.resolve();
  await waitFor(() => Promise.resolve(questions === 2));
  assert.equal(textOf(await second), "s2 done");
  assert.equal(secondAborted, false, "s1's cancellation did not reach s2's question");
  assert.deepEqual(answered, ["1 on s1", "1 on s2"]);
});

Deno.test("connect: a retired session's open question is called off at the client once the session goes", async () => {
  // s1 asks for roots during its last call and answers the call without waiting for them: once
  // the call is done, the retired session goes, and the client must stop on its question.
  const answered: string[] = [];
  const { server, url } = forgettingServer((id, session, message) => {
    if (message.method === undefined) {
      answered.push(`${JSON.stringify(id)} on ${session}`);
      return new Response(null, { status: 202 });
    }
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(messageEvent({ jsonrpc: "2.0", id: 1, method: "roots/list" }));
        const result = { content: [{ type: "text", text: `ran on ${session}` }] };
        controller.enqueue(messageEvent({ jsonrpc: "2.0", id, result }));
        controller.close();
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  await using _server = server;
  await using client = await connectStdio([url, "--timeout", "30s"], {
    capabilities: { roots: {} },
  });
  const calledOff = rootsCalledOff(client);
  assert.equal(textOf(await client.callTool({ name: "a", arguments: {} })), "ran on s1");
  assert.equal(await calledOff(), "the server's session ended");
  assert.deepEqual(answered, [], "nothing answered to a session that is gone");
});

Deno.test("connect: a call accepted with 202 by a session being retired is answered at once", async () => {
  // The old session answers the call's POST with 202 (its answer would come on the GET stream,
  // which the renewal has let go): the call must fail now, not hang.
  const { server, url } = forgettingServer(() => new Response(null, { status: 202 }));
  await using _server = server;
  await using client = await connectStdio([url, "--timeout", "30s"]);
  await failsAtOnce(client, /the session ended before its answer came; retry the request/);
});

Deno.test("connect: a large answer reaches stdout as the server wrote it; a multi-line one as one line", async () => {
  // Over 64 KiB: written to stdout apart from its newline.
  const pad = "x".repeat(100_000);
  const line = (id: number) =>
    `{"jsonrpc":"2.0", "id":${id}, "result":{"content":[{"type":"text", "text":"caf\\u00e9 ${pad}"}]}}`;
  await using server = jsonServer((message, headers) => {
    // id 2: on one line; id 3: pretty-printed over several lines.
    const text = message.id === 2 ? line(2) : line(3).replaceAll(", ", ",\n  ");
    return new Response(text, { headers });
  });
  const { code, stdout } = await rawConnect(
    [`http://127.0.0.1:${server.addr.port}/mcp`],
    [INITIALIZE, { jsonrpc: "2.0", method: "notifications/initialized" }, toolCall(2), toolCall(3)],
  );
  assert.equal(code, 0);
  assert.equal(stdout.length, 3, stdout.map((l) => l.slice(0, 80)).join("\n"));
  // The two calls are in flight together: their answers may come in either order.
  const byId = new Map(stdout.map((text) => [JSON.parse(text).id, text]));
  assert.equal(byId.get(2), line(2), "forwarded as it came");
  assert.deepEqual(JSON.parse(byId.get(3)!), JSON.parse(line(3)), "one stdout line, same message");
});

Deno.test("connect: large answers in flight together each reach stdout whole, non-ASCII ones too", async () => {
  // Sizes around the reused encoding buffer's bounds (64 KiB to 4 Mi characters) and beyond it,
  // ASCII and not (U+00E9 and an emoji need more bytes than characters), all answered at once:
  // each frame is written while others wait, and none may be overwritten by the next.
  const texts = new Map<number, string>([
    [2, "a".repeat(1024 * 1024)],
    [3, "\u00e9\ud83d\ude00".repeat(40_000)],
    [4, "b".repeat(300_000)],
    [5, "c".repeat(5 * 1024 * 1024)],
    [6, "d".repeat(70_000)],
    [7, "e".repeat(2 * 1024 * 1024)],
  ]);
  const line = (id: number) =>
    JSON.stringify({
      jsonrpc: "2.0",
      id,
      result: { content: [{ type: "text", text: texts.get(id) }] },
    });
  await using server = jsonServer((message, headers) =>
    new Response(line(message.id), { headers })
  );
  const ids = [...texts.keys()];
  const { code, stdout } = await rawConnect(
    [`http://127.0.0.1:${server.addr.port}/mcp`],
    [INITIALIZE, { jsonrpc: "2.0", method: "notifications/initialized" }, ...ids.map(toolCall)],
  );
  assert.equal(code, 0);
  const byId = new Map(stdout.map((text) => [JSON.parse(text).id, text]));
  for (const id of ids) assert.ok(byId.get(id) === line(id), `answer ${id} as the server wrote it`);
});

Deno.test({
  name:
    "connect: a large request costs its process about its size in fresh memory, not twice (Linux)",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    // Unless glibc's thresholds were raised at start-up (src/allocator.ts), the block fetch
    // encodes each large body into is mapped afresh every time: as much again of never-touched
    // memory per request, at a page fault every 4 KiB (4.05 against 2.04 MiB measured per 2 MiB
    // request; 2.05 against 1.06 per 1 MiB one).
    await using server = await startNative("http");
    const proxy = spawnConnect([server.url]);
    const writer = proxy.stdin.getWriter();
    const lines = linesOf(proxy.stdout);
    const answer = async (id: number) => {
      for (;;) if (JSON.parse(await lines.next()).id === id) return;
    };
    await writer.write(frame(INITIALIZE));
    await answer(1);
    await writer.write(frame({ jsonrpc: "2.0", method: "notifications/initialized" }));
    const mib = 2;
    const value = "y".repeat(mib * 1024 * 1024);
    const call = async (id: number) => {
      await writer.write(frame({
        jsonrpc: "2.0",
        id,
        method: "completion/complete",
        params: {
          ref: { type: "ref/prompt", name: "test_prompt_with_arguments" },
          argument: { name: "arg1", value },
        },
      }));
      await answer(id);
    };
    for (let id = 2; id < 7; id++) await call(id); // the heap grows to what the calls need
    const calls = 20;
    const before = await minorFaults(proxy.pid);
    for (let id = 7; id < 7 + calls; id++) await call(id);
    const after = await minorFaults(proxy.pid);
    assert.ok(before !== undefined && after !== undefined, "minor faults read from /proc");
    const fresh = (after - before) * await pageBytes() / 2 ** 20 / calls;
    await writer.close();
    assert.equal((await proxy.status).code, 0);
    assert.ok(fresh < 1.6 * mib, `${fresh.toFixed(2)} MiB of fresh memory per ${mib} MiB request`);
  },
});

Deno.test("connect: large requests in flight together reach the server byte for byte, non-ASCII ones too", async () => {
  // Sent at once, ASCII and not (a character of 2 bytes and one of 4, the euro sign's 3 bytes),
  // from 70 KB to 4.5 MB as UTF-8: each POST carries its own line's bytes, as the client wrote
  // them (a large message goes on as the text it came in).
  const texts = new Map<number, string>([
    [2, "a".repeat(70_000)],
    [3, "\u00e9\ud83d\ude00".repeat(40_000)],
    [4, "b".repeat(1024 * 1024)],
    [5, "\u20ac".repeat(1_500_000)],
    [6, "c".repeat(300_000)],
  ]);
  const line = (id: number) =>
    JSON.stringify({
      jsonrpc: "2.0",
      id,
      method: "tools/call",
      params: { name: "x", arguments: { text: texts.get(id) } },
    });
  const received = new Map<number, string>();
  await using server = jsonServer((message, headers, body) => {
    received.set(message.id, body);
    const answer = { jsonrpc: "2.0", id: message.id, result: { content: [] } };
    return new Response(JSON.stringify(answer), { headers });
  });
  const ids = [...texts.keys()];
  const { code, stdout } = await rawConnect(
    [`http://127.0.0.1:${server.addr.port}/mcp`],
    [INITIALIZE, { jsonrpc: "2.0", method: "notifications/initialized" }, ...ids.map(line)],
  );
  assert.equal(code, 0);
  assert.deepEqual(stdout.map((text) => JSON.parse(text).id).sort(), [1, ...ids]);
  for (const id of ids) assert.ok(received.get(id) === line(id), `request ${id} as written`);
});

Deno.test("connect: a large request reaches the server as the client wrote it; under a tool filter, as parsed", async () => {
  const plain = verbatimCall(2, `"name":"heard"`);
  const dup = verbatimCall(3, `"name":"hidden", "name":"heard"`);
  // The fixture answers with the line it read; serve in front of it passes a client's text on.
  await using server = await startServe([], fixtureCommand("raw_stdio.ts"));
  const heard = async (flags: string[], line: string) => {
    const { code, stdout } = await rawConnect(
      [server.mcpUrl.href, ...flags],
      [INITIALIZE, { jsonrpc: "2.0", method: "notifications/initialized" }, line],
    );
    assert.equal(code, 0);
    const answer = stdout.map((text) => JSON.parse(text)).find((m) => m.id === JSON.parse(line).id);
    return textOf(answer?.result);
  };
  assert.equal(await heard([], plain), plain);
  assert.equal(await heard(["--allow-tool", "heard"], plain), reserialized(plain));
  assert.equal(await heard(["--allow-tool", "heard"], dup), reserialized(dup), "the name judged");
  assert.ok(!reserialized(dup).includes("hidden"));
});

Deno.test("connect: a server's broken answers are clear errors, with credentials redacted", async () => {
  await using server = jsonServer((message, headers) => {
    if (message.id === 2) return new Response("{not json", { headers });
    if (message.id === 3) {
      return new Response("upstream said: Authorization: Bearer sekrit-token-123", { status: 500 });
    }
    return Response.json({ jsonrpc: "2.0", id: message.id, result: { content: [] } }, { headers });
  });
  const { code, stdout, stderr } = await rawConnect(
    [`http://127.0.0.1:${server.addr.port}/mcp`],
    [
      INITIALIZE,
      { jsonrpc: "2.0", method: "notifications/initialized" },
      toolCall(2),
      toolCall(3),
      toolCall(4),
    ],
  );
  assert.equal(code, 0);
  const answers = new Map(stdout.map((line) => JSON.parse(line)).map((m) => [m.id, m]));
  assert.match(answers.get(2).error.message, /^the server's JSON answer is not valid JSON \(/);
  assert.match(answers.get(3).error.message, /answered 500 .*Bearer \[redacted\]/);
  assert.ok(!stdout.join("\n").includes("sekrit-token-123"), "no credential on the wire");
  assert.ok(!stderr.join("\n").includes("sekrit-token-123"), "nor in the log");
  assert.deepEqual(answers.get(4).result, { content: [] }, "the session goes on");
  assert.ok(!stderr.some((line) => /SyntaxError|TypeError|^\s+at /.test(line)), stderr.join("\n"));
});

Deno.test("connect: a request's event stream is let go once answered, or once cancelled", async () => {
  // A server that never ends a request's stream by itself (the spec says it SHOULD, after the
  // answer): the proxy must not hold one connection per request for the rest of the session.
  const open = new Set<string>();
  const encoder = new TextEncoder();
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      const sse = { "content-type": "text/event-stream", "mcp-session-id": "s1" };
      if (req.method === "GET") return new Response(new ReadableStream(), { headers: sse });
      if (req.method === "DELETE") return new Response(null, { status: 200 });
      const message = await req.json();
      if (message.id === undefined) return new Response(null, { status: 202 });
      if (message.method === "initialize") return initializeAnswer(message, "s1");
      const name = message.params.name as string;
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          open.add(name);
          controller.enqueue(encoder.encode(`id: ${name}-0\ndata: \n\n`));
          if (name === "quick") {
            const answer = { jsonrpc: "2.0", id: message.id, result: { content: [] } };
            controller.enqueue(
              encoder.encode(`id: ${name}-1\ndata: ${JSON.stringify(answer)}\n\n`),
            );
          }
        },
        cancel() {
          open.delete(name);
        },
      });
      return new Response(body, { headers: sse });
    },
  );
  await using client = await connectStdio([`http://127.0.0.1:${server.addr.port}/mcp`]);
  await client.callTool({ name: "quick", arguments: {} });
  await waitFor(() => Promise.resolve(!open.has("quick")));
  const abort = new AbortController();
  const call = client.callTool({ name: "slow", arguments: {} }, undefined, {
    signal: abort.signal,
  });
  await waitFor(() => Promise.resolve(open.has("slow")));
  abort.abort("changed my mind");
  await assert.rejects(call, /changed my mind/);
  await waitFor(() => Promise.resolve(!open.has("slow")));
});

/** A minimal server's JSON answer to `initialize` (tools only), opening session `session`. */
/** A tool call that must fail with -32000 and `pattern`, long before --timeout. */
async function failsAtOnce(client: StdioTestClient, pattern: RegExp): Promise<void> {
  const began = Date.now();
  const error = await client.callTool({ name: "transfer", arguments: {} }).then(
    () => assert.fail("its answer can never come"),
    (e: Error & { code?: number }) => e,
  );
  assert.ok(Date.now() - began < 10_000, "answered now, not at --timeout");
  assert.equal(error.code, -32000);
  assert.match(error.message, pattern);
}

/** A tools/call request with id `id`, as a client writes it to connect's stdin. */
function toolCall(id: number) {
  return { jsonrpc: "2.0", id, method: "tools/call", params: { name: "x", arguments: {} } };
}

/**
 * A session-less Streamable HTTP server answering with JSON bodies: no GET stream, initialize
 * answered, every other request by `answer` (given the headers of the session "s1" and the body
 * as it came).
 */
function jsonServer(
  answer: (
    message: { id: number; method: string },
    headers: Record<string, string>,
    body: string,
  ) => Response,
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    if (req.method === "GET") return new Response(null, { status: 405 });
    if (req.method === "DELETE") return new Response(null, { status: 200 });
    const body = await req.text();
    const message = JSON.parse(body);
    if (message.id === undefined) return new Response(null, { status: 202 });
    if (message.method === "initialize") return initializeAnswer(message, "s1");
    return answer(message, { "content-type": "application/json", "mcp-session-id": "s1" }, body);
  });
}
