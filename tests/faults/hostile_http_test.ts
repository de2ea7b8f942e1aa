// serve's HTTP front against hostile requests, black box: Host and Origin rebinding on every route
// and method (single server and gateway, named and merged routes), oversized and duplicated
// headers, guessed session ids (ids are random UUIDv4s), and API keys compared in constant time.

import assert from "node:assert/strict";
import { fixtureCommand, type ServeProcess, startServe } from "../support/cli.ts";
import { connectHttp, textOf } from "../support/client.ts";
import { startGateway, stdioServer, tempDir, writeConfig } from "../support/gateway.ts";
import { type RawAnswer, rawRequest } from "../support/hostile.ts";
import { KeyRing } from "../../src/downstream/guards.ts";

const PROTOCOL = "2025-11-25";
const INITIALIZE = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: "t", version: "1" } },
});
const JSON_HEADERS = [
  "content-type: application/json",
  "accept: application/json, text/event-stream",
];

function portOf(proxy: ServeProcess): number {
  return Number(new URL(proxy.url).port);
}

/** Every route and method a browser could be made to send to, with a body where one belongs. */
function routes(prefix = ""): Array<[string, string, string]> {
  return [
    ["POST", `${prefix}/mcp`, INITIALIZE],
    ["GET", `${prefix}/mcp`, ""],
    ["DELETE", `${prefix}/mcp`, ""],
    ["OPTIONS", `${prefix}/mcp`, ""],
    ["PUT", `${prefix}/mcp`, INITIALIZE],
    ["GET", `${prefix}/sse`, ""],
    ["POST", `${prefix}/message?sessionId=${crypto.randomUUID()}`, INITIALIZE],
    ["POST", `${prefix}/messages?sessionId=${crypto.randomUUID()}`, INITIALIZE],
  ];
}

const OTHER_ROUTES: Array<[string, string, string]> = [
  ["GET", "/health", ""],
  ["HEAD", "/health", ""],
  ["GET", "/ping", ""],
  ["GET", "/nowhere", ""],
  ["POST", "/", INITIALIZE],
];

/** Hosts a rebinding page could send (its own name), in every spelling that must not pass. */
function foreignHosts(port: number): Array<string | undefined> {
  return [
    "evil.example",
    `evil.example:${port}`,
    "localhost.evil.example",
    `127.0.0.1.evil.example:${port}`,
    "LOCALHOST.EVIL.EXAMPLE",
    "",
    undefined, // no Host header at all (HTTP/1.0)
  ];
}

const FOREIGN_ORIGINS = [
  "http://evil.example",
  "https://evil.example",
  "http://localhost.evil.example",
  "http://127.0.0.1.evil.example:8080",
  "http://localhost@evil.example",
  "null",
  "file://",
  "chrome-extension://abcdefghijklmnop",
  "http://[::1].evil.example",
  "localhost",
];

async function send(
  port: number,
  [method, path, body]: [string, string, string],
  headers: Array<string | undefined>,
): Promise<RawAnswer> {
  const version = headers.includes(undefined) ? "HTTP/1.0" : "HTTP/1.1";
  const lines = [`${method} ${path} ${version}`, ...headers.filter((h) => h !== undefined)];
  return await rawRequest(port, lines, body);
}

/**
 * Host values no browser sends, that a parser may still read two ways: the guard and the URL
 * parser must agree (a guard that keeps "localhost" from "localhost:80@evil.example" while the URL
 * says evil.example is a differential), and none may cause a 500.
 */
const MALFORMED_HOSTS = [
  "localhost:80@evil.example",
  "localhost:80.evil.example",
  "localhost:99999",
  "localhost:abc",
  "127.0.0.1:1:2",
  "[::1",
  "[::1]:x",
  "a b",
  "localhost%00",
  "localhost:8080/x",
];

/** A 403 (or `statuses`) with a JSON-RPC error body (HEAD: no body), no CORS or session header. */
function assertForbidden(
  answer: RawAnswer,
  what: string,
  pattern: RegExp,
  statuses = [403],
): void {
  assert.ok(!answer.closed, `${what}: ${answer.closed && answer.why}`);
  assert.ok(statuses.includes(answer.status), `${what}: ${answer.status} ${answer.body}`);
  assert.equal(answer.headers.get("mcp-session-id"), null, what);
  assert.equal(answer.headers.get("access-control-allow-origin"), null, what);
  if (what.startsWith("HEAD ")) return;
  const body = JSON.parse(answer.body);
  assert.equal(body.error.code, -32000, what);
  assert.match(body.error.message, pattern, what);
}

async function counts(
  base: string,
): Promise<{ sessions: { streamable: number; sse: number }; children: number }> {
  const health = await (await fetch(`${base}/health`)).json();
  return { sessions: health.sessions, children: health.children };
}

Deno.test("serve: a foreign Host is refused on every route and method (DNS rebinding)", async () => {
  await using proxy = await startServe([], fixtureCommand("faulty_stdio.ts"));
  const port = portOf(proxy);
  for (const route of [...routes(), ...OTHER_ROUTES]) {
    for (const host of foreignHosts(port)) {
      const headers = [host === undefined ? undefined : `host: ${host}`, ...JSON_HEADERS];
      const what = `${route[0]} ${route[1]} with Host ${JSON.stringify(host)}`;
      assertForbidden(await send(port, route, headers), what, /Host "[^"]*" is not/);
    }
    // The control: the same request with a local Host is not refused (an SSE stream never ends:
    // that one is opened with fetch below).
    if (route[1].endsWith("/sse")) continue;
    const local = await send(port, route, [`host: localhost:${port}`, ...JSON_HEADERS]);
    assert.ok(!local.closed && local.status !== 403, `${route[0]} ${route[1]} with a local Host`);
  }
  const stream = await fetch(proxy.sseUrl, { headers: { accept: "text/event-stream" } });
  assert.equal(stream.status, 200);
  await stream.body?.cancel();
  // Nothing a refused request carried reached a route: the one local initialize made the session.
  assert.equal((await counts(proxy.url)).sessions.streamable, 1);
});

Deno.test("serve: a malformed Host is refused (400 or 403), never a 500, never let through", async () => {
  await using proxy = await startServe([], fixtureCommand("faulty_stdio.ts"));
  const port = portOf(proxy);
  const wrong: string[] = [];
  for (const route of [...routes(), ...OTHER_ROUTES]) {
    for (const host of MALFORMED_HOSTS) {
      const what = `${route[0]} ${route[1]} with Host ${JSON.stringify(host)}`;
      const answer = await send(port, route, [`host: ${host}`, ...JSON_HEADERS]);
      try {
        assertForbidden(answer, what, /Host|Bad Request/, [400, 403]);
      } catch {
        wrong.push(`${what}: ${answer.closed ? answer.why : answer.status}`);
      }
    }
  }
  assert.deepEqual(wrong, [], `${wrong.length} malformed Hosts were not refused`);
  assert.deepEqual(await counts(proxy.url), {
    sessions: { streamable: 0, sse: 0 },
    children: 0,
  });
  assert.ok(!/request failed/.test(proxy.stderrText), proxy.stderrText);
});

Deno.test("serve: a foreign Origin is refused on every MCP route and method, CORS for none", async () => {
  await using proxy = await startServe([], fixtureCommand("faulty_stdio.ts"));
  const port = portOf(proxy);
  for (const route of routes()) {
    for (const origin of FOREIGN_ORIGINS) {
      const headers = [`host: localhost:${port}`, `origin: ${origin}`, ...JSON_HEADERS];
      const what = `${route[0]} ${route[1]} with Origin ${origin}`;
      assertForbidden(await send(port, route, headers), what, /Origin .* is not allowed/);
    }
  }
  assert.deepEqual(await counts(proxy.url), {
    sessions: { streamable: 0, sse: 0 },
    children: 0,
  });
  // /health answers anyone (it holds no secret), but a foreign page gets no CORS to read it.
  const health = await send(port, ["GET", "/health", ""], [
    `host: localhost:${port}`,
    "origin: http://evil.example",
  ]);
  assert.ok(!health.closed && health.status === 200);
  assert.equal(health.headers.get("access-control-allow-origin"), null);
});

Deno.test("gateway: Host and Origin are checked on named and merged routes; sessions stay on theirs", async () => {
  await using dir = await tempDir();
  const path = await writeConfig(dir.path, {
    mcpServers: { s: stdioServer("faulty_stdio.ts") },
  });
  await using gateway = await startGateway(path);
  await gateway.waitState(["s"]);
  const port = portOf(gateway);
  for (const route of [...routes("/s"), ...routes(), ...OTHER_ROUTES]) {
    for (const host of ["evil.example", `evil.example:${port}`, ""]) {
      assertForbidden(
        await send(port, route, [`host: ${host}`, ...JSON_HEADERS]),
        `${route[0]} ${route[1]} with Host ${host}`,
        /Host "[^"]*" is not/,
      );
    }
    if (route[1] === "/health" || route[1] === "/ping") continue;
    for (const origin of ["http://evil.example", "null"]) {
      assertForbidden(
        await send(port, route, [`host: localhost:${port}`, `origin: ${origin}`, ...JSON_HEADERS]),
        `${route[0]} ${route[1]} with Origin ${origin}`,
        /Origin .* is not allowed/,
      );
    }
  }
  const health = await gateway.health();
  assert.deepEqual(health.sessions, { streamable: 0, sse: 0 }, "no refused request made one");

  // A session id belongs to its route: the merged route does not know a named route's, nor back.
  await using named = await connectHttp(gateway.route("s"));
  await using merged = await connectHttp(gateway.mcpUrl);
  const idOf = (client: typeof named) =>
    (client.transport as unknown as { sessionId: string }).sessionId;
  const crossed: Array<[string, URL]> = [
    [idOf(named), gateway.mcpUrl],
    [idOf(merged), gateway.route("s")],
  ];
  for (const [id, url] of crossed) {
    const response = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-session-id": id,
        "mcp-protocol-version": PROTOCOL,
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
    });
    assert.equal(response.status, 404, `${id} on ${url}`);
    assert.equal((await response.json()).error.code, -32001);
  }
  assert.equal(textOf(await named.callTool({ name: "echo", arguments: { text: "a" } })), "a");
});

Deno.test("serve: oversized, numerous and duplicated headers are refused or served, never a crash", async (t) => {
  await using proxy = await startServe(["--api-key", "k"], fixtureCommand("faulty_stdio.ts"));
  const port = portOf(proxy);
  const local = `host: localhost:${port}`;
  const refusedOrClosed = (answer: RawAnswer, what: string, statuses: number[]) =>
    assert.ok(
      answer.closed || statuses.includes(answer.status),
      `${what}: ${answer.closed ? answer.why : `${answer.status} ${answer.body.slice(0, 200)}`}`,
    );

  await t.step("a 16 KB header is served", async () => {
    const answer = await send(port, ["GET", "/health", ""], [
      local,
      `x-pad: ${"a".repeat(16_384)}`,
    ]);
    assert.ok(!answer.closed && answer.status === 200);
  });
  await t.step("a 1 MB header: 431 or the connection closed", async () => {
    const answer = await send(port, ["GET", "/health", ""], [
      local,
      `x-pad: ${"a".repeat(1 << 20)}`,
    ]);
    refusedOrClosed(answer, "1 MB header", [431, 400]);
  });
  await t.step("2000 headers: 431/400 or the connection closed", async () => {
    const many = Array.from({ length: 2000 }, (_, i) => `x-h${i}: v`);
    refusedOrClosed(await send(port, ["GET", "/health", ""], [local, ...many]), "2000", [431, 400]);
  });
  await t.step("two Host headers (one foreign): refused", async () => {
    for (const hosts of [[local, "host: evil.example"], ["host: evil.example", local]]) {
      refusedOrClosed(await send(port, ["GET", "/health", ""], hosts), "two hosts", [400, 403]);
    }
  });
  await t.step("a 48 KB API key: 401; a 48 KB session id: 404", async () => {
    const key = await send(port, ["POST", "/mcp", INITIALIZE], [
      local,
      ...JSON_HEADERS,
      `x-api-key: ${"k".repeat(48 * 1024)}`,
    ]);
    assert.ok(!key.closed && key.status === 401, key.closed ? key.why : key.body.slice(0, 200));
    const bearer = await send(port, ["POST", "/mcp", INITIALIZE], [
      local,
      ...JSON_HEADERS,
      `authorization: Bearer ${"k".repeat(48 * 1024)}`,
    ]);
    assert.ok(!bearer.closed && bearer.status === 401);
    const session = await send(port, ["POST", "/mcp", INITIALIZE], [
      local,
      ...JSON_HEADERS,
      "x-api-key: k",
      `mcp-session-id: ${"s".repeat(48 * 1024)}`,
    ]);
    assert.ok(!session.closed && session.status === 404);
  });
  await t.step("afterwards: healthy, and a client works", async () => {
    assert.deepEqual(await counts(proxy.url), {
      sessions: { streamable: 0, sse: 0 },
      children: 0,
    });
    await using client = await connectHttp(proxy.mcpUrl, { headers: { "x-api-key": "k" } });
    assert.equal(textOf(await client.callTool({ name: "echo", arguments: { text: "x" } })), "x");
  });
});

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Starts a session by hand; returns its id (the answer's stream is read to its end). */
async function newSession(proxy: ServeProcess): Promise<string> {
  const response = await fetch(proxy.mcpUrl, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: INITIALIZE,
  });
  assert.equal(response.status, 200);
  await response.text();
  return response.headers.get("mcp-session-id")!;
}

async function sseSessionId(proxy: ServeProcess): Promise<{ id: string; close(): void }> {
  const abort = new AbortController();
  const response = await fetch(proxy.sseUrl, {
    headers: { accept: "text/event-stream" },
    signal: abort.signal,
  });
  const reader = response.body!.getReader();
  let text = "";
  while (!/sessionId=([^\s&]+)/.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  return {
    id: /sessionId=([^\s&]+)/.exec(text)![1]!,
    close: () => {
      reader.cancel().catch(() => {});
      abort.abort();
    },
  };
}

Deno.test("serve: session ids are random UUIDv4s, never repeated; guessed ones get 404", async (t) => {
  // The built-in demo server: sessions are cheap, no child per session.
  await using proxy = await startServe([]);
  const ids: string[] = [];
  for (let batch = 0; batch < 20; batch++) {
    ids.push(...await Promise.all(Array.from({ length: 10 }, () => newSession(proxy))));
  }
  const sse = await Promise.all(Array.from({ length: 5 }, () => sseSessionId(proxy)));

  await t.step("200 Streamable HTTP and 5 SSE ids: UUIDv4 (122 random bits), all different", () => {
    for (const id of [...ids, ...sse.map((s) => s.id)]) assert.match(id, UUID_V4);
    assert.equal(new Set([...ids, ...sse.map((s) => s.id)]).size, ids.length + sse.length);
    // Random, not a counter or a clock: every random hex position takes many values.
    const hex = ids.map((id) => id.replace(/-/g, ""));
    for (const position of [0, 7, 8, 11, 13, 20, 31]) {
      const values = new Set(hex.map((h) => h[position]));
      assert.ok(values.size >= 10, `position ${position} took ${values.size} values`);
    }
  });

  const real = ids[0]!;
  const post = (id: string, url = proxy.mcpUrl) =>
    fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-session-id": id,
        "mcp-protocol-version": PROTOCOL,
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "ping" }),
    });
  const flip = (id: string, at: number) =>
    id.slice(0, at) + (id[at] === "0" ? "1" : "0") + id.slice(at + 1);
  const deleted = ids[1]!;
  const gone = await fetch(proxy.mcpUrl, {
    method: "DELETE",
    headers: { "mcp-session-id": deleted, "mcp-protocol-version": PROTOCOL },
  });
  assert.equal(gone.status, 200);
  await gone.body?.cancel();

  await t.step(
    "unknown, altered, re-cased, padded, deleted and cross-transport ids: 404",
    async () => {
      const guesses = [
        crypto.randomUUID(),
        "00000000-0000-4000-8000-000000000000",
        flip(real, 0),
        flip(real, 35),
        real.toUpperCase(),
        `${real}0`,
        real.slice(0, -1),
        real.replace(/-/g, ""),
        deleted,
        sse[0]!.id,
        "1",
        "../" + real,
      ];
      for (const guess of guesses) {
        for (const method of ["POST", "GET", "DELETE"]) {
          const response = method === "POST" ? await post(guess) : await fetch(proxy.mcpUrl, {
            method,
            headers: {
              accept: "text/event-stream",
              "mcp-session-id": guess,
              "mcp-protocol-version": PROTOCOL,
            },
          });
          const text = await response.text();
          assert.equal(response.status, 404, `${method} with ${JSON.stringify(guess)}: ${text}`);
          assert.equal(JSON.parse(text).error.code, -32001);
        }
      }
      // Legacy SSE: a Streamable HTTP id, or an altered SSE id, is no /message session.
      for (const guess of [real, flip(sse[1]!.id, 0), sse[1]!.id.toUpperCase()]) {
        const response = await fetch(
          `${proxy.url}/message?sessionId=${encodeURIComponent(guess)}`,
          {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ jsonrpc: "2.0", id: 3, method: "ping" }),
          },
        );
        assert.equal(response.status, 404, `/message with ${guess}`);
        await response.body?.cancel();
      }
    },
  );

  await t.step("the real ones still work", async () => {
    const response = await post(real);
    assert.equal(response.status, 200);
    assert.match(await response.text(), /"result":\{\}/);
  });
  for (const s of sse) s.close();
});

Deno.test("serve: API keys and route tokens are compared in constant time", async (t) => {
  await t.step("KeyRing accepts exactly its keys", async () => {
    const ring = new KeyRing(["s3cret-key-0123", "other-\u00e9", ""]);
    for (const key of ["s3cret-key-0123", "other-\u00e9"]) {
      assert.equal(await ring.accepts(key), true);
    }
    const wrong = [
      "s3cret-key-0124", // same length, last character
      "t3cret-key-0123", // same length, first character
      "s3cret-key-012", // a prefix
      "s3cret-key-01234", // longer
      "S3CRET-KEY-0123",
      " s3cret-key-0123",
      "other-e\u0301", // the same text, decomposed
      "s3cret-key-0123\u0000",
      "x".repeat(100_000),
    ];
    for (const key of wrong) assert.equal(await ring.accepts(key), false, JSON.stringify(key));
    // An empty configured key is a key like any other: only "" matches it.
    assert.equal(await ring.accepts(""), true);
    assert.equal(await new KeyRing(["k"]).accepts(""), false);
  });

  await t.step(
    "the source compares digests without an early exit, and keys nowhere else",
    async () => {
      const guards = await Deno.readTextFile(
        new URL("../../src/downstream/guards.ts", import.meta.url),
      );
      const compare = /function timingSafeEqual[\s\S]*?\n}/.exec(guards)?.[0];
      assert.ok(compare, "guards.ts has its timingSafeEqual");
      assert.doesNotMatch(compare, /return\s+false|break|===\s*b\[|!==\s*b\[/, "no early exit");
      assert.match(compare, /\|=/, "differences are accumulated");
      assert.match(
        guards,
        /crypto\.subtle\.digest\("SHA-256"/,
        "equal-length digests, not raw keys",
      );
      const accepts = /async accepts[\s\S]*?\n {2}}/.exec(guards)?.[0] ?? "";
      assert.match(accepts, /for \(const key of/, "every key is checked");
      assert.doesNotMatch(accepts, /return true|break/, "no early exit across keys");
      // Nowhere in src/ is a key or token compared with == or ===.
      const offenders: string[] = [];
      for await (const file of walk(new URL("../../src/", import.meta.url))) {
        const text = await Deno.readTextFile(file);
        text.split("\n").forEach((line, i) => {
          if (
            /\b(apiKey|authTokens?|keys?|given|bearer|token|secret|password)\b\s*[!=]=(?![=\s]*(undefined|null|"|'|`))/
              .test(line)
          ) offenders.push(`${file.pathname}:${i + 1}: ${line.trim()}`);
        });
      }
      assert.deepEqual(offenders, []);
    },
  );
});

async function* walk(dir: URL): AsyncGenerator<URL> {
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) yield* walk(url);
    else if (entry.name.endsWith(".ts")) yield url;
  }
}
