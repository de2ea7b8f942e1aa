// The gateway's routes with two stdio fixtures and one remote fixture: each /<name>/mcp and
// /<name>/sse (a child per session, as serve), the merged /mcp and /sse (namespaced catalog, calls,
// prompts, resources, completion, logging, progress, subscriptions), filters, per-server tokens.

import assert from "node:assert/strict";
import { connectHttp, connectSse, endSession, textOf } from "./support/client.ts";
import { checkCatalog, checkRoundTrips, ROUND_TRIP_CAPABILITIES } from "./support/features.ts";
import {
  alive,
  rawInitialize,
  rejection,
  startGateway,
  stdioServer,
  tempDir,
  writeConfig,
} from "./support/gateway.ts";
import { startNative } from "./support/native.ts";
import {
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from "./support/sdk.ts";
import { waitFor } from "./support/wait.ts";

const faulty = () => stdioServer("faulty_stdio.ts");
const every = () => stdioServer("everything_stdio.ts");
const pidOf = (result: unknown): number => JSON.parse(textOf(result)).pid;

Deno.test("gateway: every route of two stdio servers, a remote one and a disabled one", async (t) => {
  await using dir = await tempDir();
  await using native = await startNative("http");
  const path = await writeConfig(dir.path, {
    mcpServers: {
      faulty: faulty(),
      every: every(),
      remote: { url: native.url },
      off: { ...faulty(), options: { disabled: true } },
    },
  });
  await using gateway = await startGateway(path);
  const url = gateway.url;
  await gateway.waitForLine(new RegExp(`^\\[mcp-proxy\\] off: ${url}/off/mcp \\(disabled\\)$`));
  for (const name of ["faulty", "every", "remote"]) {
    await gateway.waitForLine(new RegExp(`^\\[mcp-proxy\\] ${name}: ${url}/${name}/mcp$`));
  }
  assert.ok(gateway.stderr.includes(`[mcp-proxy] merged: ${url}/mcp`), gateway.stderrText);
  const ready = await gateway.waitState(["faulty", "every", "remote"]);
  assert.equal(ready.httpStatus, 200);
  assert.equal(ready.status, "ok");
  assert.deepEqual(ready.servers, {
    faulty: { state: "ready", restarts: 0, required: false },
    every: { state: "ready", restarts: 0, required: false },
    remote: { state: "ready", restarts: 0, required: false },
    off: { state: "disabled", restarts: 0, required: false },
  });

  await using merged = await connectHttp(gateway.mcpUrl);
  const memberPid = pidOf(await merged.callTool({ name: "faulty__whoami", arguments: {} }));

  await t.step("/faulty/mcp and /faulty/sse: a child per session, not the merged one", async () => {
    const one = await connectHttp(gateway.route("faulty"));
    const two = await connectHttp(gateway.route("faulty"));
    await using sse = await connectSse(gateway.route("faulty", "sse"));
    const whoami = async (client: typeof one) =>
      JSON.parse(textOf(await client.callTool({ name: "whoami", arguments: {} })));
    const first = await whoami(one);
    assert.deepEqual(await whoami(one), { pid: first.pid, calls: 2 });
    const second = await whoami(two);
    const third = await whoami(sse);
    assert.equal(second.calls, 1);
    assert.equal(third.calls, 1);
    assert.equal(new Set([first.pid, second.pid, third.pid, memberPid]).size, 4);
    assert.equal(textOf(await sse.callTool({ name: "echo", arguments: { text: "hi" } })), "hi");
    assert.equal((await gateway.health()).sessions.streamable, 3, "merged and two /faulty");
    // Ending a session ends its child, and only its child.
    await endSession(one);
    await waitFor(async () => !(await alive(first.pid)));
    assert.ok(await alive(second.pid) && await alive(memberPid));
    await two.close();
  });

  await t.step("/every/mcp, /every/sse, /remote/mcp, /remote/sse: the whole catalog", async () => {
    for (const [name, kind] of [["every", "mcp"], ["every", "sse"], ["remote", "mcp"]] as const) {
      const connect = kind === "mcp" ? connectHttp : connectSse;
      await using client = await connect(gateway.route(name, kind));
      await checkCatalog(client);
    }
    await using remoteSse = await connectSse(gateway.route("remote", "sse"), {
      capabilities: ROUND_TRIP_CAPABILITIES,
    });
    await checkCatalog(remoteSse);
    await using client = await connectHttp(gateway.route("every"), {
      capabilities: ROUND_TRIP_CAPABILITIES,
    });
    await checkRoundTrips(client);
  });

  await t.step("a disabled server and an unknown name have no route", async () => {
    for (const route of ["/off/mcp", "/nobody/mcp"]) {
      const response = await rawInitialize(new URL(route, url));
      assert.equal(response.status, 404);
      const body = await response.json();
      assert.equal(
        body.error.message,
        `Not found: nothing is served at ${route}; try /mcp and /sse, /faulty/mcp and ` +
          "/faulty/sse, /every/mcp and /every/sse, /remote/mcp and /remote/sse",
      );
    }
  });

  await t.step("merged /mcp: tools are the namespaced union, calls are routed", async () => {
    assert.equal(merged.getServerVersion()?.name, "mcp-proxy");
    const capabilities = merged.getServerCapabilities();
    assert.deepEqual(capabilities?.tools, { listChanged: true });
    assert.deepEqual(capabilities?.resources, { subscribe: true, listChanged: true });
    assert.ok(capabilities?.logging && capabilities.completions && capabilities.prompts);

    const expected: string[] = [];
    for (const name of ["faulty", "every", "remote"]) {
      await using client = await connectHttp(gateway.route(name));
      for (const tool of (await client.listTools()).tools) expected.push(`${name}__${tool.name}`);
    }
    const { tools } = await merged.listTools();
    assert.deepEqual(tools.map((tool) => tool.name).sort(), expected.sort());
    assert.ok(!tools.some((tool) => tool.name.startsWith("off__")));
    const simple = tools.find((tool) => tool.name === "every__test_simple_text");
    assert.equal(simple?.description, "Returns a simple text response");

    const whoami = JSON.parse(
      textOf(await merged.callTool({ name: "faulty__whoami", arguments: {} })),
    );
    assert.deepEqual(whoami, { pid: memberPid, calls: 2 }, "one long-lived member child");
    for (const name of ["every__test_simple_text", "remote__test_simple_text"]) {
      const result = await merged.callTool({ name, arguments: {} });
      assert.equal(textOf(result), "This is a simple text response for testing.");
    }
    const echo = await merged.callTool({ name: "faulty__echo", arguments: { text: "routed" } });
    assert.equal(textOf(echo), "routed");
    const failing = await merged.callTool({ name: "every__test_error_handling", arguments: {} });
    assert.equal(failing.isError, true);
    for (const name of ["every__nope", "nobody__echo", "echo"]) {
      const error = await rejection(merged.callTool({ name, arguments: {} }));
      assert.equal(error.code, -32602, name);
      // Exactly one prefix: the client's SDK adds it; the proxy sends the bare message.
      assert.equal(error.message, `MCP error -32602: Unknown tool: ${name}`);
    }
    // A disabled server is known but never started: its names are refused as unavailable.
    const off = await rejection(merged.callTool({ name: "off__echo", arguments: {} }));
    assert.equal(off.code, -32603);
    assert.equal(off.message, 'MCP error -32603: server "off" is not available');
  });

  await t.step("merged /mcp: prompts, resources, templates and completion", async () => {
    const { prompts } = await merged.listPrompts();
    const names = prompts.map((prompt) => prompt.name);
    for (const server of ["every", "remote"]) {
      assert.ok(names.includes(`${server}__test_simple_prompt`), names.join());
    }
    assert.ok(names.every((name) => /^(every|remote)__test_/.test(name)), names.join());
    const prompt = await merged.getPrompt({
      name: "remote__test_prompt_with_arguments",
      arguments: { arg1: "a", arg2: "b" },
    });
    assert.deepEqual(prompt.messages[0]?.content, {
      type: "text",
      text: "Prompt with arguments: arg1='a', arg2='b'",
    });
    await assert.rejects(merged.getPrompt({ name: "every__nope" }), /Unknown prompt|not found/i);

    const { resources } = await merged.listResources();
    const uris = resources.map((resource) => resource.uri);
    for (const server of ["every", "remote"]) {
      assert.ok(uris.includes(`mcp-proxy://${server}/test://static-text`), uris.join());
    }
    assert.ok(uris.every((uri) => /^mcp-proxy:\/\/(every|remote)\/test:\/\//.test(uri)));
    const text = await merged.readResource({ uri: "mcp-proxy://every/test://static-text" });
    assert.deepEqual(text.contents, [{
      uri: "mcp-proxy://every/test://static-text",
      mimeType: "text/plain",
      text: "This is the content of the static text resource.",
    }]);
    const { resourceTemplates } = await merged.listResourceTemplates();
    const templates = resourceTemplates.map((template) => template.uriTemplate).sort();
    assert.deepEqual(templates, [
      "mcp-proxy://every/test://template/{id}/data",
      "mcp-proxy://remote/test://template/{id}/data",
    ]);
    // The round trip: a URI filled in from a merged template reads the member's resource.
    const filled = templates[1]!.replace("{id}", "42");
    const data = await merged.readResource({ uri: filled });
    assert.equal(data.contents[0]?.uri, "mcp-proxy://remote/test://template/42/data");
    assert.match(JSON.stringify(data.contents), /Data for ID: 42/);
    for (const uri of ["test://static-text", "mcp-proxy://nobody/test://static-text"]) {
      const error = await rejection(merged.readResource({ uri }));
      assert.equal(error.code, -32602, uri);
      assert.match(error.message, new RegExp(`Unknown resource: ${uri}$`));
    }

    const completion = await merged.complete({
      ref: { type: "ref/prompt", name: "every__test_prompt_with_arguments" },
      argument: { name: "arg1", value: "par" },
    });
    assert.deepEqual(completion.completion.values, ["paris", "park", "party"]);
    assert.deepEqual(await merged.ping(), {});
  });

  await t.step("merged /mcp: progress, logging and subscriptions pass through", async () => {
    const progress: number[] = [];
    const done = await merged.callTool(
      { name: "every__test_tool_with_progress", arguments: {} },
      undefined,
      { onprogress: (p) => progress.push(p.progress) },
    );
    assert.equal(textOf(done), "Tool with progress executed successfully");
    assert.deepEqual(progress, [0, 50, 100]);

    const logs: string[] = [];
    merged.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
      logs.push(`${n.params.level} ${n.params.logger} ${n.params.data}`);
    });
    await merged.setLoggingLevel("info");
    await merged.callTool({ name: "remote__test_tool_with_logging", arguments: {} });
    await waitFor(() => Promise.resolve(logs.length >= 3));
    assert.deepEqual(logs, [
      "info remote/everything-server Tool execution started",
      "info remote/everything-server Tool processing data",
      "info remote/everything-server Tool execution completed",
    ]);
    // The level reached the member: below it, nothing is sent.
    await merged.setLoggingLevel("error");
    await merged.callTool({ name: "remote__test_tool_with_logging", arguments: {} });
    assert.equal(logs.length, 3);
    // Another merged session asks for info: it gets the member's info messages; this session,
    // at error, still gets none of them (the member is shared, the level is per session).
    await using other = await connectHttp(gateway.mcpUrl);
    const otherLogs: string[] = [];
    other.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
      otherLogs.push(`${n.params.level} ${n.params.data}`);
    });
    await other.setLoggingLevel("info");
    await other.callTool({ name: "remote__test_tool_with_logging", arguments: {} });
    await waitFor(() => Promise.resolve(otherLogs.length >= 3));
    await merged.ping();
    assert.equal(logs.length, 3, logs.join("\n"));

    const updates: string[] = [];
    merged.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
      updates.push(n.params.uri);
    });
    const watched = "mcp-proxy://every/test://watched-resource";
    await merged.subscribeResource({ uri: watched });
    const update = await merged.callTool({ name: "every__test_resource_update", arguments: {} });
    assert.equal(textOf(update), "Sent update for test://watched-resource");
    await waitFor(() => Promise.resolve(updates.length > 0));
    assert.deepEqual(updates, [watched]);
    await merged.unsubscribeResource({ uri: watched });
    const after = await merged.callTool({ name: "every__test_resource_update", arguments: {} });
    assert.equal(textOf(after), "test://watched-resource not subscribed");
  });

  await t.step("merged /sse: the same catalog over legacy SSE", async () => {
    await using sse = await connectSse(gateway.sseUrl);
    const viaSse = (await sse.listTools()).tools.map((tool) => tool.name).sort();
    const viaMcp = (await merged.listTools()).tools.map((tool) => tool.name).sort();
    assert.deepEqual(viaSse, viaMcp);
    const result = await sse.callTool({ name: "remote__test_simple_text", arguments: {} });
    assert.equal(textOf(result), "This is a simple text response for testing.");
    const read = await sse.readResource({ uri: "mcp-proxy://remote/test://static-text" });
    assert.equal(read.contents[0]?.uri, "mcp-proxy://remote/test://static-text");
  });
});

Deno.test("gateway: toolFilter allow and block, on the server's route and the merged one", async (t) => {
  await using dir = await tempDir();
  const path = await writeConfig(dir.path, {
    mcpServers: {
      faulty: { ...faulty(), options: { toolFilter: { mode: "allow", list: ["echo", "who*"] } } },
      every: {
        ...every(),
        options: {
          toolFilter: {
            mode: "block",
            list: ["test_error_handling", "test_simple_prompt", "static-text"],
          },
        },
      },
    },
  });
  await using gateway = await startGateway(path);
  await gateway.waitState(["faulty", "every"]);
  await using merged = await connectHttp(gateway.mcpUrl);
  await using faultyRoute = await connectHttp(gateway.route("faulty"));
  await using everyRoute = await connectHttp(gateway.route("every"));
  const refused = async (call: Promise<unknown>, message: string) => {
    const error = await rejection(call, message);
    assert.equal(error.code, -32602, message);
    assert.equal(error.message, `MCP error -32602: ${message}`);
  };

  await t.step("tools: hidden from the lists, refused when called", async () => {
    const names = async (client: typeof merged) =>
      (await client.listTools()).tools.map((tool) => tool.name).sort();
    assert.deepEqual(await names(faultyRoute), ["echo", "whoami"]);
    const everyTools = await names(everyRoute);
    assert.ok(!everyTools.includes("test_error_handling"), everyTools.join());
    assert.ok(everyTools.includes("test_simple_text"), everyTools.join());
    assert.deepEqual(
      await names(merged),
      ["faulty__echo", "faulty__whoami", ...everyTools.map((name) => `every__${name}`)].sort(),
    );
    await refused(
      faultyRoute.callTool({ name: "crash", arguments: { code: 1 } }),
      "Unknown tool: crash",
    );
    await refused(
      merged.callTool({ name: "faulty__crash", arguments: { code: 1 } }),
      "Unknown tool: faulty__crash",
    );
    await refused(
      everyRoute.callTool({ name: "test_error_handling" }),
      "Unknown tool: test_error_handling",
    );
    await refused(
      merged.callTool({ name: "every__test_error_handling" }),
      "Unknown tool: every__test_error_handling",
    );
    const echo = await merged.callTool({ name: "faulty__echo", arguments: { text: "x" } });
    assert.equal(textOf(echo), "x");
    const own = await faultyRoute.callTool({ name: "echo", arguments: { text: "y" } });
    assert.equal(textOf(own), "y");
  });

  await t.step("prompts: hidden and refused on both routes", async () => {
    const prompts = (await merged.listPrompts()).prompts.map((prompt) => prompt.name);
    assert.ok(!prompts.includes("every__test_simple_prompt"), prompts.join());
    assert.ok(prompts.includes("every__test_prompt_with_arguments"), prompts.join());
    const routePrompts = (await everyRoute.listPrompts()).prompts.map((prompt) => prompt.name);
    assert.ok(!routePrompts.includes("test_simple_prompt"), routePrompts.join());
    await refused(
      everyRoute.getPrompt({ name: "test_simple_prompt" }),
      "Unknown prompt: test_simple_prompt",
    );
    await refused(
      merged.getPrompt({ name: "every__test_simple_prompt" }),
      "Unknown prompt: every__test_simple_prompt",
    );
  });

  await t.step("resources: hidden from the lists and refused on the server's route", async () => {
    const routeUris = (await everyRoute.listResources()).resources.map((resource) => resource.uri);
    assert.ok(!routeUris.includes("test://static-text"), routeUris.join());
    assert.ok(routeUris.includes("test://watched-resource"), routeUris.join());
    await refused(
      everyRoute.readResource({ uri: "test://static-text" }),
      "Unknown resource: test://static-text",
    );
  });

  await t.step("resources: hidden from the merged list and refused when read there", async () => {
    const uris = (await merged.listResources()).resources.map((resource) => resource.uri);
    assert.ok(!uris.includes("mcp-proxy://every/test://static-text"), uris.join());
    assert.ok(uris.includes("mcp-proxy://every/test://watched-resource"), uris.join());
    await refused(
      merged.readResource({ uri: "mcp-proxy://every/test://static-text" }),
      "Unknown resource: mcp-proxy://every/test://static-text",
    );
  });
});

Deno.test("gateway: per-server authTokens, and the global --api-key on every route", async (t) => {
  await using dir = await tempDir();
  const path = await writeConfig(dir.path, {
    mcpServers: {
      locked: { ...faulty(), options: { authTokens: ["locked-token-1", "locked-token-2"] } },
      open: faulty(),
    },
  });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const status = async (url: URL, headers: Record<string, string> = {}) => {
    const response = await rawInitialize(url, headers);
    await response.body?.cancel();
    return response.status;
  };
  const works = async (url: URL, headers: Record<string, string>, sse = false) => {
    await using client = await (sse ? connectSse : connectHttp)(url, { headers });
    assert.equal(textOf(await client.callTool({ name: "echo", arguments: { text: "ok" } })), "ok");
  };

  await t.step("without --api-key: only the server with tokens is locked", async () => {
    await using gateway = await startGateway(path);
    await gateway.waitState(["locked", "open"]);
    const locked = gateway.route("locked");
    const response = await rawInitialize(locked);
    assert.equal(response.status, 401);
    assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="mcp-proxy"');
    assert.equal(
      (await response.json()).error.message,
      "Unauthorized: send the API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
    );
    assert.equal(await status(locked, bearer("wrong")), 401);
    assert.equal(await status(gateway.route("locked", "sse")), 401);
    await works(locked, bearer("locked-token-1"));
    await works(locked, { "x-api-key": "locked-token-2" });
    await works(gateway.route("locked", "sse"), bearer("locked-token-2"), true);
    await works(gateway.route("open"), {});
    // The merged route has no tokens of its own: open, and it still reaches the locked server.
    await using merged = await connectHttp(gateway.mcpUrl);
    const echo = await merged.callTool({ name: "locked__echo", arguments: { text: "m" } });
    assert.equal(textOf(echo), "m");
    assert.equal((await gateway.health()).httpStatus, 200);
  });

  await t.step(
    "with --api-key: it opens every route; a server's token opens only its own",
    async () => {
      await using gateway = await startGateway(path, ["--api-key", "global-key"]);
      await gateway.waitState(["locked", "open"]);
      for (const url of [gateway.mcpUrl, gateway.route("open"), gateway.route("locked")]) {
        assert.equal(await status(url), 401, url.pathname);
      }
      assert.equal(await status(gateway.mcpUrl, bearer("locked-token-1")), 401);
      assert.equal(await status(gateway.route("open"), bearer("locked-token-1")), 401);
      await works(gateway.route("locked"), bearer("global-key"));
      await works(gateway.route("locked"), bearer("locked-token-1"));
      await works(gateway.route("open"), bearer("global-key"));
      await works(gateway.route("open", "sse"), { "x-api-key": "global-key" }, true);
      await using merged = await connectHttp(gateway.mcpUrl, { headers: bearer("global-key") });
      assert.ok((await merged.listTools()).tools.some((tool) => tool.name === "locked__echo"));
      assert.ok(!gateway.stderrText.includes("locked-token-1"), "tokens are not logged");
    },
  );
});
