// serve's HTTP front, black box: the API key, DNS-rebinding protection (Host and Origin), CORS,
// body limits and malformed input, and /health. No refused request may end a session or the server.

import assert from "node:assert/strict";
import { fixtureCommand, fixturePath, type ServeProcess, startServe } from "./support/cli.ts";
import { connectHttp, connectSse, endSession, type TestClient, textOf } from "./support/client.ts";
import { messageOf, parseSse } from "./support/sse.ts";
import { StreamableHTTPClientTransport } from "./support/sdk.ts";
import { waitFor } from "./support/wait.ts";

const faulty = fixtureCommand("faulty_stdio.ts");
const PROTOCOL = "2025-11-25";
const INITIALIZE = {
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: "t", version: "1" } },
};
const POST_HEADERS = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
};

interface Health {
  status: string;
  mode: string;
  children: number;
  sessions: { streamable: number; sse: number };
}

/** Reads /health (or /ping) with no credentials at all. */
async function health(proxy: ServeProcess, path = "/health"): Promise<Health> {
  const response = await fetch(`${proxy.url}${path}`);
  assert.equal(response.status, 200, `${path} answers 200`);
  return await response.json();
}

/** A JSON-RPC error body: `{jsonrpc, id: null, error: {code, message}}`; returns the message. */
async function expectRpcError(
  response: Response,
  status: number,
  code: number,
): Promise<string> {
  const text = await response.text();
  assert.equal(response.status, status, `expected HTTP ${status}, got ${response.status}: ${text}`);
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  const body = JSON.parse(text);
  assert.equal(body.jsonrpc, "2.0");
  assert.equal(body.id, null);
  assert.equal(body.error.code, code, `expected code ${code} in ${text}`);
  assert.equal(typeof body.error.message, "string");
  return body.error.message;
}

/** POSTs an initialize request; on success, reads its SSE answer and returns the session id. */
async function initialize(
  proxy: ServeProcess,
  headers: Record<string, string> = {},
): Promise<Response> {
  return await fetch(proxy.mcpUrl, {
    method: "POST",
    headers: { ...POST_HEADERS, ...headers },
    body: JSON.stringify(INITIALIZE),
  });
}

/** Reads an initialize answer (a stream, or JSON) to its result and returns the session id. */
async function sessionOf(response: Response): Promise<string> {
  assert.equal(response.status, 200);
  assert.match(
    response.headers.get("content-type") ?? "",
    /^(text\/event-stream|application\/json)/,
  );
  const sessionId = response.headers.get("mcp-session-id");
  assert.ok(sessionId, "an initialize answer carries Mcp-Session-Id");
  for await (const event of parseSse(response.body!)) {
    const message = messageOf(event);
    if (message && "result" in message) {
      assert.equal((message.result as { protocolVersion: string }).protocolVersion, PROTOCOL);
      return sessionId;
    }
  }
  throw new Error("the initialize stream ended without a result");
}

/** The session id the SDK client was given. */
function sessionIdOf(client: TestClient): string {
  const transport = client.transport;
  assert.ok(transport instanceof StreamableHTTPClientTransport);
  assert.ok(transport.sessionId);
  return transport.sessionId;
}

/** Echo round trip through the client's session: proves the session and its child are alive. */
async function assertEchoes(client: TestClient, text = "still here"): Promise<void> {
  const result = await client.callTool({ name: "echo", arguments: { text } });
  assert.equal(textOf(result), text);
}

interface RawResponse {
  status: number;
  headers: Headers;
  body: string;
}

/**
 * One HTTP/1.1 request written by hand over TCP, because fetch silently replaces a Host header
 * with the URL's authority. Sends `Connection: close` and reads to EOF.
 */
async function rawHttp(
  port: number,
  request: { method: string; path: string; headers: Record<string, string>; body?: string },
): Promise<RawResponse> {
  const encoder = new TextEncoder();
  const body = encoder.encode(request.body ?? "");
  const head = [`${request.method} ${request.path} HTTP/1.1`];
  for (const [name, value] of Object.entries(request.headers)) head.push(`${name}: ${value}`);
  head.push("connection: close");
  if (request.body !== undefined) head.push(`content-length: ${body.byteLength}`);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const out = new Uint8Array([...encoder.encode(head.join("\r\n") + "\r\n\r\n"), ...body]);
  for (let written = 0; written < out.byteLength;) {
    written += await conn.write(out.subarray(written));
  }
  const bytes = new Uint8Array(await new Response(conn.readable).arrayBuffer());
  const split = indexOf(bytes, encoder.encode("\r\n\r\n"), 0);
  assert.ok(split > 0, "a complete response head");
  const [statusLine, ...lines] = new TextDecoder().decode(bytes.subarray(0, split)).split("\r\n");
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? "")?.[1]);
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  let payload: Uint8Array<ArrayBuffer> = bytes.subarray(split + 4);
  if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) payload = dechunk(payload);
  return { status, headers, body: new TextDecoder().decode(payload) };
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  outer: for (let i = from; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** Decodes a chunked transfer-encoded body. */
function dechunk(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const crlf = new TextEncoder().encode("\r\n");
  const parts: number[] = [];
  let at = 0;
  for (;;) {
    const end = indexOf(bytes, crlf, at);
    assert.ok(end !== -1, "a chunk size line");
    const size = parseInt(new TextDecoder().decode(bytes.subarray(at, end)), 16);
    if (size === 0) break;
    parts.push(...bytes.subarray(end + 2, end + 2 + size));
    at = end + 2 + size + 2;
  }
  return new Uint8Array(parts);
}

/** Initializes a session by hand over TCP with the given headers (Host among them). */
function rawInitialize(proxy: ServeProcess, headers: Record<string, string>): Promise<RawResponse> {
  const port = new URL(proxy.url).port;
  return rawHttp(Number(port), {
    method: "POST",
    path: "/mcp",
    headers: { ...POST_HEADERS, ...headers },
    body: JSON.stringify(INITIALIZE),
  });
}

/** A raw initialize answer that was let through: 200, a session id and an initialize result. */
async function assertRawInitialized(response: RawResponse, why: string): Promise<void> {
  assert.equal(response.status, 200, `${why}: ${response.body}`);
  assert.ok(response.headers.get("mcp-session-id"), `${why}: a session id`);
  const events = [];
  for await (const event of parseSse(new Response(response.body).body!)) events.push(event);
  const result = events.map(messageOf).find((message) => message && "result" in message);
  assert.ok(result, `${why}: an initialize result in ${response.body}`);
}

/** A raw answer refused with 403 and a JSON-RPC error body. */
function assertRawForbidden(response: RawResponse, pattern: RegExp): void {
  assert.equal(response.status, 403, response.body);
  const body = JSON.parse(response.body);
  assert.equal(body.error.code, -32000);
  assert.match(body.error.message, pattern);
  assert.equal(response.headers.get("mcp-session-id"), null);
}

Deno.test("serve --api-key: no or wrong key gets 401; Bearer and X-API-Key both work", async () => {
  await using proxy = await startServe(["--api-key", "k"], faulty);

  const none = await initialize(proxy);
  const why = await expectRpcError(none, 401, -32000);
  assert.match(why, /Authorization: Bearer/);
  assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer\b/);
  assert.equal(none.headers.get("mcp-session-id"), null);

  const wrongKeys: Record<string, string>[] = [
    { authorization: "Bearer wrong" },
    { "x-api-key": "wrong" },
    { "x-api-key": "k2" },
    { authorization: "Basic azpr" },
    { authorization: "Bearer " },
  ];
  for (const headers of wrongKeys) {
    const wrong = await initialize(proxy, headers);
    await expectRpcError(wrong, 401, -32000);
    assert.match(wrong.headers.get("www-authenticate") ?? "", /^Bearer\b/);
  }
  // Nothing was let through: no session, no child.
  const untouched = await health(proxy);
  assert.deepEqual([untouched.sessions, untouched.children], [{ streamable: 0, sse: 0 }, 0]);

  // Every route is guarded, not just POST /mcp.
  const guarded: Array<[string, string]> = [
    ["GET", "/mcp"],
    ["DELETE", "/mcp"],
    ["GET", "/sse"],
    ["POST", "/message?sessionId=x"],
    ["GET", "/nowhere"],
  ];
  for (const [method, path] of guarded) {
    const response = await fetch(`${proxy.url}${path}`, { method, headers: POST_HEADERS });
    await expectRpcError(response, 401, -32000);
  }

  await using bearer = await connectHttp(proxy.mcpUrl, { headers: { authorization: "Bearer k" } });
  await assertEchoes(bearer, "via bearer");
  await using xKey = await connectHttp(proxy.mcpUrl, { headers: { "x-api-key": "k" } });
  await assertEchoes(xKey, "via x-api-key");
  await using sse = await connectSse(proxy.sseUrl, { headers: { "x-api-key": "k" } });
  await assertEchoes(sse, "via sse");
  const refused = await connectHttp(proxy.mcpUrl).catch((error: Error) => error);
  assert.ok(refused instanceof Error, "the SDK client without a key cannot connect");
  assert.match(refused.message, /401|Unauthorized/);

  // A session id is not a credential: a known session without the key is still refused.
  const hijack = await fetch(proxy.mcpUrl, {
    method: "POST",
    headers: {
      ...POST_HEADERS,
      "mcp-session-id": sessionIdOf(bearer),
      "mcp-protocol-version": PROTOCOL,
    },
    body: JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/list" }),
  });
  await expectRpcError(hijack, 401, -32000);
  await assertEchoes(bearer, "the refused request did not hurt the session");

  // Health and ping stay open; a CORS preflight carries no credentials and is answered too.
  for (const path of ["/health", "/ping"]) {
    const state = await health(proxy, path);
    assert.equal(state.status, "ok");
    assert.deepEqual(state.sessions, { streamable: 2, sse: 1 });
    assert.equal(state.children, 3);
  }
  const preflight = await fetch(proxy.mcpUrl, {
    method: "OPTIONS",
    headers: {
      origin: "http://localhost:3000",
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type",
    },
  });
  await preflight.body?.cancel();
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), "http://localhost:3000");
  // A browser page must be able to read the 401 (and its challenge): it carries CORS headers.
  const browser401 = await initialize(proxy, { origin: "http://localhost:3000" });
  await expectRpcError(browser401, 401, -32000);
  assert.equal(browser401.headers.get("access-control-allow-origin"), "http://localhost:3000");
  assert.match(browser401.headers.get("access-control-expose-headers") ?? "", /WWW-Authenticate/i);
});

Deno.test("serve: the API key from MCP_PROXY_API_KEY is not handed down to the MCP server", async () => {
  const key = "proxy-secret-0d2f6a8b";
  // The child may read exactly this variable; its getenv tool answers "(unset)" when it is absent.
  const child = [
    Deno.execPath(),
    "run",
    "--no-prompt",
    "--quiet",
    "--allow-env=MCP_PROXY_API_KEY",
    fixturePath("faulty_stdio.ts"),
  ];
  await using proxy = await startServe([], child, { env: { MCP_PROXY_API_KEY: key } });
  await using client = await connectHttp(proxy.mcpUrl, { headers: { "x-api-key": key } });
  const seen = textOf(
    await client.callTool({ name: "getenv", arguments: { name: "MCP_PROXY_API_KEY" } }),
  );
  assert.ok(
    seen === "(unset)" || seen === "",
    `the proxy's own inbound API key reached the server it spawned (getenv answered ${
      seen === key ? "the key itself" : JSON.stringify(seen)
    })`,
  );
});

Deno.test("serve: the API key from MCP_PROXY_API_KEY or --api-key never reaches stderr", async (t) => {
  const key = "proxy-secret-5b7e19c4";
  const variants: Array<[string, string[], Record<string, string>]> = [
    ["MCP_PROXY_API_KEY", ["--debug"], { MCP_PROXY_API_KEY: key }],
    ["--api-key", ["--debug", "--api-key", key], {}],
  ];
  for (const [name, flags, env] of variants) {
    await t.step(name, async () => {
      // --noisy makes the child print "echo called with <text>" on stdout, which the proxy drops
      // and logs at debug level: echoing the key is a way to push it into a log line.
      await using proxy = await startServe(flags, fixtureCommand("faulty_stdio.ts", "--noisy"), {
        env,
      });
      await expectRpcError(await initialize(proxy), 401, -32000);
      await expectRpcError(await initialize(proxy, { "x-api-key": `${key}x` }), 401, -32000);
      {
        await using bearer = await connectHttp(proxy.mcpUrl, {
          headers: { authorization: `Bearer ${key}` },
        });
        await assertEchoes(bearer, key);
        await using xKey = await connectHttp(proxy.mcpUrl, { headers: { "x-api-key": key } });
        await assertEchoes(xKey, `key=${key}`);
        await endSession(xKey);
      }
      await proxy.waitForLine(/dropped a non-JSON-RPC stdout line .*echo called with/);
      await proxy.stop();
      // The exit can race the last stderr lines through the pipe: wait until the pump has them.
      await waitFor(() => Promise.resolve(proxy.stderr.some((line) => /shutting down/.test(line))));
      assert.ok(proxy.stderr.some((line) => line.includes("debug:")), "debug logging was on");
      assert.ok(!proxy.stderrText.includes(key), `the key leaked:\n${proxy.stderrText}`);
      assert.match(proxy.stderrText, /echo called with \[redacted\]/);
    });
  }
});

Deno.test("serve: the Host header must name the proxy (DNS-rebinding protection)", async (t) => {
  await t.step("default: only local names", async () => {
    await using proxy = await startServe([], faulty);
    const port = new URL(proxy.url).port;
    for (const host of ["evil.example.com", `evil.example.com:${port}`, "localhost.evil.example"]) {
      assertRawForbidden(await rawInitialize(proxy, { host }), /Host .* is not allowed/);
    }
    // Refused on every route, not just /mcp.
    const sse = await rawHttp(Number(port), {
      method: "GET",
      path: "/sse",
      headers: { host: "evil.example.com", accept: "text/event-stream" },
    });
    assertRawForbidden(sse, /--allowed-host/);
    assert.equal((await health(proxy)).children, 0, "a refused request spawns nothing");

    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, "localhost", "LOCALHOST"]) {
      await assertRawInitialized(await rawInitialize(proxy, { host }), `Host ${host}`);
    }
    assert.equal((await health(proxy)).sessions.streamable, 4);
  });

  await t.step("--allowed-host adds a name", async () => {
    await using proxy = await startServe(["--allowed-host", "proxy.example"], faulty);
    const port = new URL(proxy.url).port;
    for (const host of ["proxy.example", "proxy.example:8443", `localhost:${port}`]) {
      await assertRawInitialized(await rawInitialize(proxy, { host }), `Host ${host}`);
    }
    for (const host of ["evil.example.com", "other.proxy.example"]) {
      assertRawForbidden(await rawInitialize(proxy, { host }), /is not allowed/);
    }
  });
});

Deno.test("serve: browser Origins are refused unless local or allowed; CORS only for them", async (t) => {
  const preflight = (proxy: ServeProcess, origin: string) =>
    fetch(proxy.mcpUrl, {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, mcp-session-id",
      },
    });

  await t.step("default: local origins only", async () => {
    await using proxy = await startServe([], faulty);
    for (const origin of ["http://evil.example.com", "null", "http://localhost.evil.example"]) {
      const refused = await initialize(proxy, { origin });
      assert.match(await expectRpcError(refused, 403, -32000), /--cors-origin/);
      assert.equal(refused.headers.get("access-control-allow-origin"), null);
      const pre = await preflight(proxy, origin);
      await expectRpcError(pre, 403, -32000);
      assert.equal(pre.headers.get("access-control-allow-origin"), null);
    }
    assert.equal((await health(proxy)).children, 0);

    for (const origin of ["http://localhost:3000", "http://127.0.0.1:5173"]) {
      const allowed = await initialize(proxy, { origin });
      assert.equal(allowed.headers.get("access-control-allow-origin"), origin);
      assert.match(allowed.headers.get("access-control-expose-headers") ?? "", /Mcp-Session-Id/i);
      assert.match(allowed.headers.get("vary") ?? "", /Origin/);
      await sessionOf(allowed);

      const pre = await preflight(proxy, origin);
      await pre.body?.cancel();
      assert.equal(pre.status, 204);
      assert.equal(pre.headers.get("access-control-allow-origin"), origin);
      assert.match(pre.headers.get("access-control-allow-methods") ?? "", /\bPOST\b/);
      assert.match(pre.headers.get("access-control-allow-methods") ?? "", /\bDELETE\b/);
      assert.match(pre.headers.get("access-control-allow-headers") ?? "", /mcp-session-id/i);
    }

    // No Origin (not a browser): served, and no CORS headers at all.
    const plain = await initialize(proxy);
    for (const name of plain.headers.keys()) assert.doesNotMatch(name, /^access-control-/);
    await sessionOf(plain);
    assert.equal((await health(proxy)).sessions.streamable, 3);
  });

  await t.step("--cors-origin https://app.example", async () => {
    await using proxy = await startServe(["--cors-origin", "https://app.example"], faulty);
    const allowed = await initialize(proxy, { origin: "https://app.example" });
    assert.equal(allowed.headers.get("access-control-allow-origin"), "https://app.example");
    await sessionOf(allowed);
    const pre = await preflight(proxy, "https://app.example");
    await pre.body?.cancel();
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-origin"), "https://app.example");
    assert.ok(pre.headers.get("access-control-allow-methods"));
    assert.ok(pre.headers.get("access-control-allow-headers"));

    for (
      const origin of ["https://other.example", "http://app.example", "https://app.example.evil"]
    ) {
      const refused = await initialize(proxy, { origin });
      await expectRpcError(refused, 403, -32000);
      assert.equal(refused.headers.get("access-control-allow-origin"), null);
      const refusedPre = await preflight(proxy, origin);
      await expectRpcError(refusedPre, 403, -32000);
    }
    const local = await initialize(proxy, { origin: "http://localhost:8000" });
    assert.equal(local.headers.get("access-control-allow-origin"), "http://localhost:8000");
    await sessionOf(local);
  });

  await t.step("--cors-origin '*'", async () => {
    await using proxy = await startServe(["--cors-origin", "*"], faulty);
    for (const origin of ["https://anything.example", "http://evil.example.com"]) {
      const allowed = await initialize(proxy, { origin });
      assert.equal(allowed.headers.get("access-control-allow-origin"), "*");
      await sessionOf(allowed);
      const pre = await preflight(proxy, origin);
      await pre.body?.cancel();
      assert.equal(pre.status, 204);
      assert.equal(pre.headers.get("access-control-allow-origin"), "*");
    }
    const plain = await initialize(proxy);
    assert.equal(plain.headers.get("access-control-allow-origin"), null);
    await sessionOf(plain);
  });
});

Deno.test("serve: oversized, malformed and misrouted requests are refused without harm", async (t) => {
  await using proxy = await startServe(["--max-body", "1kb"], faulty);
  await using client = await connectHttp(proxy.mcpUrl);
  await assertEchoes(client, "before");
  const sessionId = sessionIdOf(client);
  const sessionHeaders = {
    ...POST_HEADERS,
    "mcp-session-id": sessionId,
    "mcp-protocol-version": PROTOCOL,
  };
  const echoCall = (text: string) =>
    JSON.stringify({
      jsonrpc: "2.0",
      id: "raw-7",
      method: "tools/call",
      params: { name: "echo", arguments: { text } },
    });
  const post = (body: BodyInit, headers: Record<string, string> = sessionHeaders) =>
    fetch(proxy.mcpUrl, { method: "POST", headers, body });

  /** After each refusal: the session still answers, nothing new was spawned, the server serves. */
  const unharmed = async (label: string) => {
    await assertEchoes(client, `after ${label}`);
    const state = await health(proxy);
    assert.deepEqual(state.sessions, { streamable: 1, sse: 0 }, label);
    assert.equal(state.children, 1, label);
  };

  await t.step("a body under the limit is served (1kb is 1024 bytes)", async () => {
    const body = echoCall("x".repeat(900));
    assert.ok(body.length < 1024);
    const response = await post(body);
    assert.equal(response.status, 200);
    const messages = [];
    for await (const event of parseSse(response.body!)) {
      const message = messageOf(event);
      if (message) messages.push(message);
    }
    assert.equal(messages.length, 1);
    assert.equal(textOf((messages[0] as { result: unknown }).result), "x".repeat(900));
  });

  await t.step("413 over --max-body, with Content-Length", async () => {
    const body = echoCall("x".repeat(2000));
    const message = await expectRpcError(await post(body), 413, -32600);
    assert.match(message, /1024 bytes.*--max-body/);
    await unharmed("413 in a session");
    // Also before any session exists: no session is created and no child spawned.
    const padded = JSON.stringify({
      ...INITIALIZE,
      params: { ...INITIALIZE.params, pad: "x".repeat(2000) },
    });
    await expectRpcError(await post(padded, POST_HEADERS), 413, -32600);
    await unharmed("413 on initialize");
  });

  await t.step("413 over --max-body, chunked with no Content-Length", async () => {
    const chunk = new TextEncoder().encode(" ".repeat(512));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 8) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const response = await fetch(proxy.mcpUrl, {
      method: "POST",
      headers: sessionHeaders,
      body,
    });
    await expectRpcError(response, 413, -32600);
    await unharmed("chunked 413");
  });

  await t.step("400 with -32700 for malformed JSON", async () => {
    for (const headers of [sessionHeaders, POST_HEADERS]) {
      for (const body of ['{"jsonrpc": "2.0",', "not json", ""]) {
        const message = await expectRpcError(await post(body, headers), 400, -32700);
        assert.match(message, /Parse error/);
      }
    }
    await unharmed("malformed JSON");
  });

  await t.step("400 with -32600 for JSON that is not a JSON-RPC message", async () => {
    const bodies = [
      "42",
      '"hello"',
      "null",
      "[]",
      "[1, 2]",
      '{"hello": "world"}',
      '{"jsonrpc": "1.0", "method": "ping", "id": 1}',
      '{"jsonrpc": "2.0", "method": 5, "id": 1}',
      '{"jsonrpc": "2.0", "method": "ping", "id": {"x": 1}}',
      '{"jsonrpc": "2.0", "id": 1}',
    ];
    for (const headers of [sessionHeaders, POST_HEADERS]) {
      for (const body of bodies) {
        const message = await expectRpcError(await post(body, headers), 400, -32600);
        assert.match(message, /Invalid Request/, body);
      }
    }
    await unharmed("invalid JSON-RPC");
  });

  await t.step("415 for a Content-Type other than JSON", async () => {
    for (const type of ["text/plain", "application/x-www-form-urlencoded", "text/json"]) {
      const headers = { ...sessionHeaders, "content-type": type };
      const message = await expectRpcError(await post(echoCall("x"), headers), 415, -32600);
      assert.match(message, /Content-Type must be application\/json/);
    }
    await unharmed("415");
  });

  await t.step("404 with -32001 for an unknown Mcp-Session-Id", async () => {
    const unknown = { ...sessionHeaders, "mcp-session-id": crypto.randomUUID() };
    for (const method of ["POST", "GET", "DELETE"]) {
      const response = await fetch(proxy.mcpUrl, {
        method,
        headers: unknown,
        body: method === "POST" ? echoCall("x") : undefined,
      });
      assert.match(await expectRpcError(response, 404, -32001), /Session not found/);
    }
    await unharmed("unknown session");
  });

  await t.step("405 with Allow for other methods on /mcp", async () => {
    for (const method of ["PUT", "PATCH"]) {
      const response = await fetch(proxy.mcpUrl, {
        method,
        headers: sessionHeaders,
        body: echoCall("x"),
      });
      await expectRpcError(response, 405, -32000);
      assert.equal(response.headers.get("allow"), "GET, POST, DELETE");
    }
    await unharmed("405");
  });

  await t.step("404 for a path nothing is served at", async () => {
    for (const path of ["/nope", "/mcp/extra", "/MCP", "/"]) {
      const response = await fetch(`${proxy.url}${path}`, {
        method: "POST",
        headers: sessionHeaders,
        body: echoCall("x"),
      });
      assert.match(await expectRpcError(response, 404, -32000), /Not found/);
    }
    await unharmed("404 path");
  });

  await t.step("an initialize the SDK transport refuses (406) leaves no child behind", async () => {
    const response = await post(JSON.stringify(INITIALIZE), {
      "content-type": "application/json",
      accept: "application/json",
    });
    assert.equal(response.status, 406);
    await response.body?.cancel();
    await waitFor(async () => (await health(proxy)).children === 1);
    await unharmed("406");
  });

  await t.step("a new session can still be started", async () => {
    await using second = await connectHttp(proxy.mcpUrl);
    await assertEchoes(second, "new session");
    assert.notEqual(sessionIdOf(second), sessionId);
  });
});

Deno.test({
  name: "serve: bodies declared large and sent slowly hold no memory for what has not arrived",
  ignore: Deno.build.os === "windows",
  async fn() {
    await using proxy = await startServe([], faulty);
    const rssMb = async () => {
      const args = ["-o", "rss=", "-p", String(proxy.process.pid)];
      const { stdout } = await new Deno.Command("ps", { args }).output();
      return Number(new TextDecoder().decode(stdout).trim()) / 1024;
    };
    await using warm = await connectHttp(proxy.mcpUrl);
    await assertEchoes(warm, "before");
    const before = await rssMb();
    // 20 POSTs each declaring almost 4 MB (under --max-body) and sending one byte of it.
    const { hostname, port } = new URL(proxy.url);
    const conns: Deno.TcpConn[] = [];
    for (let i = 0; i < 20; i++) {
      const conn = await Deno.connect({ hostname, port: Number(port) });
      conns.push(conn);
      await conn.write(new TextEncoder().encode(
        `POST /mcp HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: application/json\r\n` +
          `Accept: application/json, text/event-stream\r\nContent-Length: 4000000\r\n\r\n{`,
      ));
    }
    try {
      // A request sent after them is answered once they are being read.
      await assertEchoes(warm, "after");
      const grown = await rssMb() - before;
      assert.ok(grown < 40, `RSS grew ${grown.toFixed(1)} MB for 20 bytes of bodies`);
    } finally {
      for (const conn of conns) conn.close();
    }
    await assertEchoes(warm, "still serving");
  },
});

Deno.test("serve: bodies of every size arrive intact, with or without Content-Length", async (t) => {
  await using proxy = await startServe([], faulty);
  await using client = await connectHttp(proxy.mcpUrl);
  // Multi-byte characters (10 bytes a round), so chunk ends fall inside them.
  const text = (bytes: number) => "\u00e9\u20ac\u{1f600}x".repeat(Math.floor(bytes / 10));

  // Under 64 KiB (read in one go), up to 2 MiB (into one buffer of the declared size), past it
  // (chunks).
  for (const kb of [50, 300, 1900, 3000]) {
    await t.step(`${kb} KB with Content-Length`, async () => {
      const sent = text(kb * 1024);
      const answer = await client.callTool({ name: "echo", arguments: { text: sent } });
      assert.ok(textOf(answer) === sent, `${kb} KB came back changed`);
    });
  }

  await t.step("300 KB chunked, no Content-Length", async () => {
    const sent = text(300 * 1024);
    const bytes = new TextEncoder().encode(JSON.stringify({
      jsonrpc: "2.0",
      id: "chunked",
      method: "tools/call",
      params: { name: "echo", arguments: { text: sent } },
    }));
    let offset = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (offset >= bytes.length) return controller.close();
        controller.enqueue(bytes.slice(offset, offset += 7_777));
      },
    });
    const response = await fetch(proxy.mcpUrl, {
      method: "POST",
      headers: {
        ...POST_HEADERS,
        "mcp-session-id": sessionIdOf(client),
        "mcp-protocol-version": PROTOCOL,
      },
      body,
    });
    assert.equal(response.status, 200);
    const type = response.headers.get("content-type") ?? "";
    let answer: { result: unknown } | undefined;
    if (type.startsWith("application/json")) answer = await response.json();
    else {
      for await (const event of parseSse(response.body!)) {
        answer = messageOf(event) as typeof answer ?? answer;
      }
    }
    assert.ok(textOf(answer?.result) === sent, "the chunked body came back changed");
  });
});

Deno.test("serve: the legacy /message endpoint refuses bad input without harm", async () => {
  await using proxy = await startServe(["--max-body", "1kb"], faulty);
  const abort = new AbortController();
  const stream = await fetch(proxy.sseUrl, {
    headers: { accept: "text/event-stream" },
    signal: abort.signal,
  });
  assert.equal(stream.status, 200);
  const events = parseSse(stream.body!);
  const next = async () => {
    const { value, done } = await events.next();
    assert.ok(!done, "the SSE stream is still open");
    return value;
  };
  const endpoint = await next();
  assert.equal(endpoint.event, "endpoint");
  const messageUrl = new URL(endpoint.data, proxy.url);
  assert.ok(messageUrl.searchParams.get("sessionId"));
  const send = (body: BodyInit, url: URL = messageUrl, type = "application/json") =>
    fetch(url, { method: "POST", headers: { "content-type": type }, body });
  let calls = 0;
  /** A tool call is accepted (202) and answered on the SSE stream. */
  const echoes = async (label: string) => {
    const id = `echo-${++calls}`;
    const accepted = await send(JSON.stringify({
      jsonrpc: "2.0",
      id,
      method: "tools/call",
      params: { name: "echo", arguments: { text: label } },
    }));
    await accepted.body?.cancel();
    assert.equal(accepted.status, 202, label);
    const answer = messageOf(await next());
    assert.equal(answer?.id, id);
    assert.equal(textOf(answer?.result), label);
  };

  const init = await send(JSON.stringify(INITIALIZE));
  await init.body?.cancel();
  assert.equal(init.status, 202);
  assert.equal(messageOf(await next())?.id, 1);
  const initialized = await send(JSON.stringify({
    jsonrpc: "2.0",
    method: "notifications/initialized",
  }));
  await initialized.body?.cancel();
  assert.equal(initialized.status, 202);
  await echoes("first");

  await expectRpcError(await send(JSON.stringify({ pad: "x".repeat(2000) })), 413, -32600);
  await echoes("after 413");
  await expectRpcError(await send("{oops"), 400, -32700);
  await echoes("after -32700");
  await expectRpcError(await send('{"jsonrpc": "2.0"}'), 400, -32600);
  await echoes("after -32600");
  await expectRpcError(await send("{}", messageUrl, "text/plain"), 415, -32600);
  await echoes("after 415");
  const unknown = new URL(`/message?sessionId=${crypto.randomUUID()}`, proxy.url);
  await expectRpcError(await send("{}", unknown), 404, -32001);
  await expectRpcError(await send("{}", new URL("/message", proxy.url)), 400, -32000);
  const get = await fetch(messageUrl);
  await expectRpcError(get, 405, -32000);
  assert.equal(get.headers.get("allow"), "POST");
  await echoes("after unknown session, no session and GET");
  assert.deepEqual((await health(proxy)).sessions, { streamable: 0, sse: 1 });

  abort.abort();
  await events.return(undefined).catch(() => {});
  await waitFor(async () => (await health(proxy)).children === 0);
});

/** Waits until the counts are exactly `expected` (a child exits a moment before its session ends). */
async function waitForCounts(
  counts: () => Promise<Record<string, number>>,
  expected: Record<string, number>,
): Promise<void> {
  await waitFor(async () => JSON.stringify(await counts()) === JSON.stringify(expected));
  assert.deepEqual(await counts(), expected);
}

Deno.test("serve: /health and /ping report sessions and children as they are", async () => {
  await using proxy = await startServe([], faulty);
  /** /health and /ping answer alike (read back to back: a session may end in between). */
  const both = async () => {
    for (;;) {
      const [healthState, pingState] = [await health(proxy), await health(proxy, "/ping")];
      const again = await health(proxy);
      if (
        JSON.stringify({ ...healthState, uptimeSeconds: 0 }) !==
          JSON.stringify({ ...again, uptimeSeconds: 0 })
      ) continue;
      assert.deepEqual({ ...pingState, uptimeSeconds: 0 }, { ...healthState, uptimeSeconds: 0 });
      return healthState;
    }
  };
  const counts = async () => {
    const { sessions, children } = await both();
    return { ...sessions, children };
  };

  const first = await fetch(`${proxy.url}/health`);
  assert.match(first.headers.get("content-type") ?? "", /^application\/json/);
  assert.equal(first.headers.get("cache-control"), "no-store");
  const state = await first.json();
  assert.equal(state.status, "ok");
  assert.equal(state.mode, "stateful");
  assert.equal(typeof state.version, "string");
  assert.deepEqual(await counts(), { streamable: 0, sse: 0, children: 0 });

  const a = await connectHttp(proxy.mcpUrl);
  const b = await connectHttp(proxy.mcpUrl);
  const c = await connectSse(proxy.sseUrl);
  assert.deepEqual(await counts(), { streamable: 2, sse: 1, children: 3 });
  const pids = new Set<number>();
  for (const client of [a, b, c]) {
    pids.add(JSON.parse(textOf(await client.callTool({ name: "whoami", arguments: {} }))).pid);
  }
  assert.equal(pids.size, 3, "one child per session");

  await endSession(a);
  await waitForCounts(counts, { streamable: 1, sse: 1, children: 2 });

  await c.close();
  await waitForCounts(counts, { streamable: 1, sse: 0, children: 1 });

  await endSession(b);
  await waitForCounts(counts, { streamable: 0, sse: 0, children: 0 });

  const wrongMethod = await fetch(`${proxy.url}/health`, { method: "POST", body: "{}" });
  await expectRpcError(wrongMethod, 405, -32000);
  assert.equal(wrongMethod.headers.get("allow"), "GET");
  const head = await fetch(`${proxy.url}/ping`, { method: "HEAD" });
  await head.body?.cancel();
  assert.equal(head.status, 200);
});
