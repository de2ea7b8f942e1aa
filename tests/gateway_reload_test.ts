// The gateway's config over its lifetime: SIGHUP and --watch reloads (added servers start, removed
// ones stop with their sessions, changed ones restart, an invalid file is refused), --check with
// its exact messages, and a config loaded from an http://127.0.0.1 URL with --allow-http.

import assert from "node:assert/strict";
import { runCli } from "./support/cli.ts";
import { connectHttp, connectSse, textOf } from "./support/client.ts";
import {
  rawInitialize,
  rejection,
  startGateway,
  startRemote,
  stdioServer,
  tempDir,
  ToolListChangedNotificationSchema,
  writeConfig,
} from "./support/gateway.ts";
import { waitFor } from "./support/wait.ts";

const faulty = () => stdioServer("faulty_stdio.ts");
const every = () => stdioServer("everything_stdio.ts");
const whoami = (result: unknown): { pid: number; calls: number } => JSON.parse(textOf(result));

Deno.test("gateway: SIGHUP adds, removes and restarts servers; the untouched ones go on", async (t) => {
  await using dir = await tempDir();
  await using remote = await startRemote();
  const path = await writeConfig(dir.path, { mcpServers: { faulty: faulty(), every: every() } });
  await using gateway = await startGateway(path);
  await gateway.waitState(["faulty", "every"]);
  await using merged = await connectHttp(gateway.mcpUrl);
  let listChanged = 0;
  merged.setNotificationHandler(ToolListChangedNotificationSchema, () => void listChanged++);
  const toolNames = async () => (await merged.listTools()).tools.map((tool) => tool.name);
  const member = whoami(await merged.callTool({ name: "faulty__whoami", arguments: {} }));
  await using faultyRoute = await connectHttp(gateway.route("faulty"));
  const own = whoami(await faultyRoute.callTool({ name: "whoami", arguments: {} }));
  await using everyRoute = await connectHttp(gateway.route("every"));
  await using everySse = await connectSse(gateway.route("every", "sse"));
  assert.ok((await toolNames()).includes("every__test_simple_text"));

  await t.step("a server added and one removed", async () => {
    await writeConfig(dir.path, {
      mcpServers: { faulty: faulty(), remote: { url: remote.url } },
    });
    const changesBefore = listChanged;
    assert.equal(
      await gateway.reload(),
      "[mcp-proxy] config reloaded: 2 server(s) started, stopped or restarted",
    );
    assert.ok(gateway.stderr.includes("[mcp-proxy] every: stopping (it was removed)"));
    const health = await gateway.waitState(["faulty", "remote"]);
    assert.deepEqual(Object.keys(health.servers).sort(), ["faulty", "remote"]);

    // The removed server's routes are gone, and so are its sessions.
    for (const kind of ["mcp", "sse"] as const) {
      const response = await rawInitialize(gateway.route("every", kind));
      assert.equal(response.status, 404, kind);
      await response.body?.cancel();
    }
    await rejection(everyRoute.callTool({ name: "test_simple_text", arguments: {} }));
    await rejection(everySse.callTool({ name: "test_simple_text", arguments: {} }));
    assert.deepEqual(health.sessions, { streamable: 2, sse: 0 }, "merged and /faulty remain");
    // The added one serves on its route and merged.
    await using remoteRoute = await connectHttp(gateway.route("remote"));
    const simple = await remoteRoute.callTool({ name: "test_simple_text", arguments: {} });
    assert.equal(textOf(simple), "This is a simple text response for testing.");
    await waitFor(async () => {
      const names = await toolNames();
      return names.some((name) => name.startsWith("remote__")) &&
        !names.some((name) => name.startsWith("every__"));
    });
    assert.ok(listChanged > changesBefore, "the merged client was told");
    const viaMerged = await merged.callTool({ name: "remote__test_simple_text", arguments: {} });
    assert.equal(textOf(viaMerged), "This is a simple text response for testing.");
    const gone = await rejection(merged.callTool({ name: "every__test_simple_text" }));
    assert.equal(gone.code, -32602);

    // The untouched server: the same member, the same per-session child.
    const again = whoami(await merged.callTool({ name: "faulty__whoami", arguments: {} }));
    assert.deepEqual(again, { pid: member.pid, calls: 2 });
    const ownAgain = whoami(await faultyRoute.callTool({ name: "whoami", arguments: {} }));
    assert.deepEqual(ownAgain, { pid: own.pid, calls: 2 });
  });

  await t.step("a changed server restarts, with its sessions; the others do not", async () => {
    const stats = async () =>
      (await (await fetch(new URL("/admin/stats", remote.url))).json()).initialized;
    const remoteSessions = await stats();
    await writeConfig(dir.path, {
      mcpServers: { faulty: { ...faulty(), env: { CHANGED: "1" } }, remote: { url: remote.url } },
    });
    const outcome = await gateway.reload();
    assert.ok(gateway.stderr.includes("[mcp-proxy] faulty: stopping (its configuration changed)"));
    assert.ok(!gateway.stderr.some((line) => line.includes("remote: stopping")));
    await gateway.waitState(["faulty", "remote"]);
    await rejection(faultyRoute.callTool({ name: "whoami", arguments: {} }));
    await using fresh = await connectHttp(gateway.route("faulty"));
    assert.equal(whoami(await fresh.callTool({ name: "whoami", arguments: {} })).calls, 1);
    await waitFor(async () => (await toolNames()).includes("faulty__whoami"));
    const restarted = whoami(await merged.callTool({ name: "faulty__whoami", arguments: {} }));
    assert.notEqual(restarted.pid, member.pid);
    assert.equal(restarted.calls, 1);
    const untouched = await merged.callTool({ name: "remote__test_simple_text", arguments: {} });
    assert.equal(textOf(untouched), "This is a simple text response for testing.");
    assert.equal(await stats(), remoteSessions, "the remote member kept its session");
    // One server restarted: the summary counts it once.
    assert.equal(outcome, "[mcp-proxy] config reloaded: 1 server(s) started, stopped or restarted");
  });

  await t.step(
    "an invalid file is refused, the running config stays and the log says why",
    async () => {
      const before = await gateway.health();
      const tools = (await toolNames()).sort();
      await writeConfig(dir.path, { mcpServers: { faulty: { comand: "x" } } });
      assert.equal(
        await gateway.reload(),
        `[mcp-proxy] error: reload refused, the running config stays: ${path}: 2 problems`,
      );
      const at = gateway.stderr.indexOf(
        `[mcp-proxy] error: reload refused, the running config stays: ${path}: 2 problems`,
      );
      assert.deepEqual(gateway.stderr.slice(at + 1, at + 3), [
        'unknown key "comand" at mcpServers.faulty; did you mean "command"?',
        'mcpServers.faulty: expected exactly one of "command" (stdio) or "url" (remote), got neither',
      ]);
      // A half-written file too.
      await writeConfig(dir.path, '{ "mcpServers": { "faulty": ');
      assert.equal(
        await gateway.reload(),
        `[mcp-proxy] error: reload refused, the running config stays: ${path}: 1 problem`,
      );
      const after = await gateway.health();
      assert.deepEqual(after.servers, before.servers);
      assert.deepEqual((await toolNames()).sort(), tools);
      await using route = await connectHttp(gateway.route("faulty"));
      assert.equal(textOf(await route.callTool({ name: "echo", arguments: { text: "on" } })), "on");
    },
  );
});

Deno.test("gateway: --watch reloads when the file changes, also when it is replaced", async () => {
  await using dir = await tempDir();
  const path = await writeConfig(dir.path, { mcpServers: { faulty: faulty() } });
  await using gateway = await startGateway(path, ["--watch"]);
  await gateway.waitState(["faulty"]);
  const reloaded = /^\[mcp-proxy\] config reloaded: /;

  // Written in place.
  await writeConfig(dir.path, { mcpServers: { faulty: faulty(), every: every() } });
  await gateway.waitForCount(reloaded, 1);
  await gateway.waitState(["faulty", "every"]);
  await using client = await connectHttp(gateway.route("every"));
  const result = await client.callTool({ name: "test_simple_text", arguments: {} });
  assert.equal(textOf(result), "This is a simple text response for testing.");

  // Replaced by a rename, as editors and config tools save files; twice.
  for (const [round, servers] of [[2, { faulty: faulty() }], [3, { every: every() }]] as const) {
    const next = await writeConfig(dir.path, { mcpServers: servers }, `next-${round}.json`);
    await Deno.rename(next, path);
    await gateway.waitForCount(reloaded, round, 10_000).catch((error) => {
      throw new Error(`replace number ${round - 1} was not reloaded`, { cause: error });
    });
    const health = await gateway.waitState(Object.keys(servers));
    assert.deepEqual(Object.keys(health.servers), Object.keys(servers));
  }
});

Deno.test("gateway: --check prints a summary, or exits 2 with the exact problems", async (t) => {
  await using dir = await tempDir();
  await t.step("valid, with comments and trailing commas", async () => {
    const path = await writeConfig(
      dir.path,
      `{
        // two servers
        "mcpServers": {
          "faulty": ${JSON.stringify(faulty())},
          "remote": { "url": "https://mcp.example/mcp", "options": { "disabled": true } },
        },
      }`,
      "valid.jsonc",
    );
    const result = await runCli(["serve", "--config", path, "--check"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${path}: valid, 2 server(s): faulty, remote\n`);
    assert.equal(result.stderr, "");
  });

  const cases: Array<[string, unknown, string[]]> = [
    ["unknown keys, reserved and clashing names", {
      mcpServers: {
        a: { comand: "x" },
        health: { command: "y" },
        b__c: { command: "z", args: "no" },
      },
    }, [
      'unknown key "comand" at mcpServers.a; did you mean "command"?',
      'mcpServers.a: expected exactly one of "command" (stdio) or "url" (remote), got neither',
      'mcpServers.health: "health" is reserved for a route (health, ping, mcp, sse, message, ' +
      "messages); rename it",
      'mcpServers.b__c: the name clashes with the merged separator "__" (tools would be named ' +
      '"b__c__<tool>"); rename it or change mcpProxy.merged.separator',
      'mcpServers.b__c.args: expected an array of strings, got "no"',
    ]],
    ["URLs, secrets and variables", {
      mcpServers: {
        r: { url: "http://example.com/mcp", headers: { Authorization: 5 } },
        v: { command: "${MCP_PROXY_TEST_UNSET}" },
        f: { command: "x", options: { toolFilter: { mode: "hide", list: [] }, timeout: "soon" } },
      },
    }, [
      "mcpServers.r.url: expected https:// (plain http:// only to localhost, unless " +
      '--allow-http), got "http://example.com/mcp"',
      'mcpServers.r.headers.Authorization: expected a string, got "***"',
      "mcpServers.v.command: uses ${MCP_PROXY_TEST_UNSET}, but MCP_PROXY_TEST_UNSET is not set",
      'mcpServers.f.options.toolFilter.mode: expected "allow" or "block", got "hide"',
      'mcpServers.f.options.timeout: expected a duration like "30s", "5m" or "500ms", or a ' +
      'number of seconds, got "soon"',
    ]],
    ["no servers", { mcpServers: {} }, ["mcpServers: expected at least one server, got {}"]],
    ["not JSON", '{\n  "mcpServers": {"a": {"command": "x"\n}\n', [
      'invalid JSON at line 4, column 1: expected "," or "}"',
    ]],
  ];
  for (const [name, config, problems] of cases) {
    await t.step(name, async () => {
      const path = await writeConfig(dir.path, config, "invalid.json");
      const count = problems.length === 1 ? "1 problem" : `${problems.length} problems`;
      const expected = [`[mcp-proxy] error: ${path}: ${count}`, ...problems, ""].join("\n");
      for (const args of [["--check"], ["--port", "0"]]) {
        const result = await runCli(["serve", "--config", path, ...args]);
        assert.equal(result.code, 2, args.join(" "));
        assert.equal(result.stdout, "");
        assert.equal(result.stderr, expected);
      }
    });
  }

  await t.step("a plain-http server URL is fine with --allow-http", async () => {
    const path = await writeConfig(dir.path, {
      mcpServers: { r: { url: "http://example.com/mcp" } },
    }, "http.json");
    const result = await runCli(["serve", "--config", path, "--check", "--allow-http"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${path}: valid, 1 server(s): r\n`);
  });

  await t.step("a missing file", async () => {
    const path = `${dir.path}/missing.json`;
    const result = await runCli(["serve", "--config", path, "--check"]);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      `[mcp-proxy] error: cannot read the config file "${path}": no such file\n`,
    );
  });
});

Deno.test("gateway: a config from an http://127.0.0.1 URL needs --allow-http, and reloads", async () => {
  let config = JSON.stringify({ mcpServers: { faulty: faulty() } });
  let fetches = 0;
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    if (new URL(req.url).pathname !== "/servers.json") return new Response("no", { status: 404 });
    fetches++;
    return new Response(config, { headers: { "content-type": "application/json" } });
  });
  const url = `http://127.0.0.1:${server.addr.port}/servers.json`;

  for (const args of [["--check"], ["--port", "0"]]) {
    const refused = await runCli(["serve", "--config", url, ...args]);
    assert.equal(refused.code, 2);
    assert.equal(
      refused.stderr,
      `[mcp-proxy] error: the config URL must be https:// (got "${url}"); ` +
        "pass --allow-http to use plain HTTP\n",
    );
  }
  assert.equal(fetches, 0, "not even fetched");
  const checked = await runCli(["serve", "--config", url, "--check", "--allow-http"]);
  assert.equal(checked.code, 0, checked.stderr);
  assert.equal(checked.stdout, `${url}: valid, 1 server(s): faulty\n`);
  const missing = await runCli([
    "serve",
    "--config",
    url.replace("servers.json", "nothing.json"),
    "--check",
    "--allow-http",
  ]);
  assert.equal(missing.code, 1);
  assert.equal(
    missing.stderr,
    `[mcp-proxy] error: cannot load the config from ${
      url.replace("servers.json", "nothing.json")
    }: HTTP 404 Not Found\n`,
  );

  await using gateway = await startGateway(url, ["--allow-http", "--watch"]);
  await gateway.waitForLine(
    /^\[mcp-proxy\] warn: --watch needs a config file; a URL is reloaded on SIGHUP only$/,
  );
  await gateway.waitState(["faulty"]);
  await using merged = await connectHttp(gateway.mcpUrl);
  const echo = await merged.callTool({ name: "faulty__echo", arguments: { text: "url" } });
  assert.equal(textOf(echo), "url");

  // SIGHUP fetches it again.
  config = JSON.stringify({ mcpServers: { faulty: faulty(), every: every() } });
  assert.match(await gateway.reload(), /config reloaded: 1 server\(s\)/);
  await gateway.waitState(["faulty", "every"]);
  await using everyRoute = await connectHttp(gateway.route("every"));
  const result = await everyRoute.callTool({ name: "test_simple_text", arguments: {} });
  assert.equal(textOf(result), "This is a simple text response for testing.");
});
