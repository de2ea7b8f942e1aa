// The gateway when servers fail: a command that does not exist (the others serve, /health says
// why and counts restarts, "required" makes it 503), per-server timeouts, members' errors, and a
// member that dies while the others keep serving (its items leave and come back, list_changed).

import assert from "node:assert/strict";
import { connectHttp, textOf } from "./support/client.ts";
import {
  alive,
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

const MISSING = "mcp-proxy-no-such-command";
const CANNOT_START = new RegExp(`^cannot start "${MISSING}": command not found`);
const faulty = () => stdioServer("faulty_stdio.ts");
const every = () => stdioServer("everything_stdio.ts");
const whoami = (result: unknown): { pid: number; calls: number } => JSON.parse(textOf(result));

Deno.test("gateway: a server that exits while it is listed is failed once per start", async () => {
  await using dir = await tempDir();
  const path = await writeConfig(dir.path, {
    mcpServers: { quitter: stdioServer("faulty_stdio.ts", "--exit-on-list") },
  });
  await using gateway = await startGateway(path);
  // Failures at 0 s, 1 s and 3 s: each logs one restart, with the backoff doubling (1s, 2s, 4s).
  const restarting = /^\[mcp-proxy\] warn: quitter: .*; restarting in (\d+)s$/;
  await gateway.waitForCount(restarting, 3);
  const health = await gateway.health();
  const delays = gateway.stderr.flatMap((line) => line.match(restarting)?.[1] ?? []);
  assert.deepEqual(delays, ["1", "2", "4"], gateway.stderrText);
  assert.equal(health.servers.quitter?.state, "failed");
  assert.equal(health.servers.quitter?.restarts, 2, "one restart per failure, none doubled");
});

Deno.test("gateway: a server that cannot start fails alone; /health says why and counts restarts", async () => {
  await using dir = await tempDir();
  const path = await writeConfig(dir.path, {
    mcpServers: { faulty: faulty(), broken: { command: MISSING, args: ["--flag"] } },
  });
  await using gateway = await startGateway(path);
  await gateway.waitState(["faulty"]);
  const health = await gateway.waitState(["broken"], "failed", (s) => s.restarts >= 1);
  assert.equal(health.httpStatus, 200, "broken is not required");
  assert.equal(health.status, "ok");
  const broken = health.servers.broken!;
  assert.match(broken.reason ?? "", CANNOT_START);
  assert.equal(broken.required, false);
  assert.deepEqual(health.servers.faulty, { state: "ready", restarts: 0, required: false });
  await gateway.waitForLine(
    /^\[mcp-proxy\] warn: broken: cannot start "mcp-proxy-no-such-command": command not found.*; restarting in 2s$/,
  );

  // The others serve, on their route and merged; the broken one has no items there.
  await using merged = await connectHttp(gateway.mcpUrl);
  const names = (await merged.listTools()).tools.map((tool) => tool.name);
  assert.ok(names.includes("faulty__echo"), names.join());
  assert.ok(names.every((name) => name.startsWith("faulty__")), names.join());
  const echo = await merged.callTool({ name: "faulty__echo", arguments: { text: "up" } });
  assert.equal(textOf(echo), "up");
  const error = await rejection(merged.callTool({ name: "broken__anything", arguments: {} }));
  assert.equal(error.code, -32603);
  assert.match(
    error.message,
    /^MCP error -32603: server "broken" is not available: cannot start "mcp-proxy-no-such/,
  );
  await using route = await connectHttp(gateway.route("faulty"));
  assert.equal(textOf(await route.callTool({ name: "echo", arguments: { text: "ok" } })), "ok");

  // Its own route answers like serve with a command that cannot start: a clear 502.
  const response = await rawInitialize(gateway.route("broken"));
  assert.equal(response.status, 502);
  const body = await response.json();
  assert.equal(body.error.code, -32000);
  assert.match(body.error.message, /cannot start "mcp-proxy-no-such-command": command not found/);
});

Deno.test("gateway: /health answers 503 while a required server is starting or failed", async () => {
  await using dir = await tempDir();
  const slow = stdioServer("faulty_stdio.ts", "--delay-ms", "1500");
  const path = await writeConfig(dir.path, {
    mcpServers: {
      every: { ...every(), options: { required: true } },
      slow: { ...slow, options: { required: true } },
    },
  });
  await using gateway = await startGateway(path);
  // The child waits 1.5 s before it answers initialize: long enough to see it starting.
  const starting = await gateway.health();
  assert.equal(starting.servers.slow?.state, "starting");
  assert.equal(starting.httpStatus, 503);
  assert.equal(starting.status, "failing");
  const ready = await gateway.waitState(["every", "slow"]);
  assert.equal(ready.httpStatus, 200);
  assert.equal(ready.status, "ok");

  await writeConfig(dir.path, {
    mcpServers: {
      every: { ...every(), options: { required: true } },
      slow: { ...slow, options: { required: true } },
      broken: { command: MISSING, options: { required: true } },
    },
  });
  await gateway.reload();
  const health = await gateway.waitState(["broken"], "failed");
  assert.equal(health.httpStatus, 503);
  assert.equal(health.status, "failing");
  assert.equal(health.servers.broken?.required, true);
  assert.deepEqual(health.servers.every, { state: "ready", restarts: 0, required: true });
  // It is only /health: the ready servers serve.
  await using merged = await connectHttp(gateway.mcpUrl);
  const result = await merged.callTool({ name: "every__test_simple_text", arguments: {} });
  assert.equal(textOf(result), "This is a simple text response for testing.");

  // A server that is not required may fail: 200.
  await writeConfig(dir.path, {
    mcpServers: {
      every: { ...every(), options: { required: true } },
      slow: { ...slow, options: { required: true } },
      broken: { command: MISSING },
    },
  });
  await gateway.reload();
  const after = await gateway.waitState(["broken"], "failed", (s) => !s.required);
  assert.equal(after.httpStatus, 200);
  assert.deepEqual(Object.keys(after.servers), ["every", "slow", "broken"]);
});

Deno.test("gateway: a per-server timeout bounds calls on its route and merged", async () => {
  await using dir = await tempDir();
  const path = await writeConfig(dir.path, {
    mcpServers: { faulty: { ...faulty(), options: { timeout: "1s" } }, other: faulty() },
  });
  await using gateway = await startGateway(path);
  await gateway.waitState(["faulty", "other"]);
  await using merged = await connectHttp(gateway.mcpUrl);
  await using route = await connectHttp(gateway.route("faulty"));
  const [viaRoute, viaMerged, other] = await Promise.all([
    rejection(route.callTool({ name: "sleep", arguments: { ms: 4000 } })),
    rejection(merged.callTool({ name: "faulty__sleep", arguments: { ms: 4000 } })),
    merged.callTool({ name: "other__sleep", arguments: { ms: 1500 } }),
  ]);
  assert.equal(viaRoute.code, -32000);
  const why = 'no answer from the MCP server within 1s (the "timeout" option of server "faulty")';
  assert.ok(viaRoute.message.endsWith(why), viaRoute.message);
  assert.equal(viaMerged.code, -32001);
  assert.ok(viaMerged.message.endsWith(why), viaMerged.message);
  assert.equal(textOf(other), "slept 1500 ms", "a server without a timeout waits");
  // Both stay usable.
  assert.equal(textOf(await route.callTool({ name: "echo", arguments: { text: "a" } })), "a");
  const echo = await merged.callTool({ name: "faulty__echo", arguments: { text: "b" } });
  assert.equal(textOf(echo), "b");
});

Deno.test("gateway: a member's error reaches the merged client as the member sent it", async () => {
  await using dir = await tempDir();
  const path = await writeConfig(dir.path, { mcpServers: { every: every() } });
  await using gateway = await startGateway(path);
  await gateway.waitState(["every"]);
  await using route = await connectHttp(gateway.route("every"));
  await using merged = await connectHttp(gateway.mcpUrl);
  // The same refusal from the same server: only the name differs between the two routes.
  const direct = await rejection(route.getPrompt({ name: "nope" }));
  const routed = await rejection(merged.getPrompt({ name: "every__nope" }));
  assert.equal(direct.code, -32602);
  assert.equal(routed.code, -32602);
  assert.equal(routed.message, direct.message);
});

Deno.test("gateway: a member that dies leaves the merged lists and comes back, the others serve", async () => {
  await using dir = await tempDir();
  await using native = await startRemote();
  const path = await writeConfig(dir.path, {
    mcpServers: { faulty: faulty(), every: every(), remote: { url: native.url } },
  });
  await using gateway = await startGateway(path);
  await gateway.waitState(["faulty", "every", "remote"]);
  await using merged = await connectHttp(gateway.mcpUrl);
  let listChanged = 0;
  merged.setNotificationHandler(ToolListChangedNotificationSchema, () => void listChanged++);
  const toolNames = async () => (await merged.listTools()).tools.map((tool) => tool.name);
  const member = whoami(await merged.callTool({ name: "faulty__whoami", arguments: {} }));

  // A crash on the server's own route ends that session's child only, not the member.
  {
    await using route = await connectHttp(gateway.route("faulty"));
    const own = whoami(await route.callTool({ name: "whoami", arguments: {} }));
    const error = await rejection(route.callTool({ name: "crash", arguments: { code: 4 } }));
    assert.match(error.message, /MCP server exited with code 4/);
    await waitFor(async () => !(await alive(own.pid)));
    const again = whoami(await merged.callTool({ name: "faulty__whoami", arguments: {} }));
    assert.deepEqual(again, { pid: member.pid, calls: 2 });
    const health = await gateway.health();
    assert.deepEqual(health.servers.faulty, { state: "ready", restarts: 0, required: false });
    assert.equal(listChanged, 0);
  }

  // A crash through the merged route kills the member's own child.
  const before = await toolNames();
  const crash = await rejection(merged.callTool({ name: "faulty__crash", arguments: { code: 3 } }));
  assert.equal(crash.code, -32000);
  assert.match(crash.message, /Connection closed/);
  // The member is failed as soon as its child is gone; its restart waits a second at least.
  const failed = await gateway.health();
  assert.equal(failed.servers.faulty?.state, "failed");
  assert.equal(failed.servers.faulty?.reason, "MCP server exited with code 3");
  const during = await toolNames();
  assert.deepEqual(during, before.filter((name) => !name.startsWith("faulty__")));
  assert.ok(during.includes("every__test_simple_text") && during.includes("remote__wait"));
  const unavailable = await rejection(merged.callTool({ name: "faulty__echo", arguments: {} }));
  assert.equal(unavailable.code, -32603);
  assert.match(
    unavailable.message,
    /^MCP error -32603: server "faulty" is not available: MCP server exited with code 3$/,
  );
  // The others keep serving, merged and on their routes.
  for (const name of ["every__test_simple_text", "remote__test_simple_text"]) {
    const result = await merged.callTool({ name, arguments: {} });
    assert.equal(textOf(result), "This is a simple text response for testing.");
  }
  await waitFor(() => Promise.resolve(listChanged >= 1));
  await waitFor(async () => !(await alive(member.pid)));

  // Restarted with backoff: ready again, its tools back, with another list_changed.
  const back = await gateway.waitState(["faulty"], "ready", (s) => s.restarts >= 1);
  assert.equal(back.servers.faulty?.reason, undefined);
  await waitFor(() => Promise.resolve(listChanged >= 2));
  assert.deepEqual((await toolNames()).sort(), [...before].sort());
  const reborn = whoami(await merged.callTool({ name: "faulty__whoami", arguments: {} }));
  assert.notEqual(reborn.pid, member.pid);
  assert.equal(reborn.calls, 1);
  await gateway.waitForLine(
    /^\[mcp-proxy\] warn: faulty: MCP server exited with code 3; restarting in 1s$/,
  );
});

Deno.test("gateway: a remote member whose server goes away leaves the merged lists and comes back", async () => {
  await using dir = await tempDir();
  const first = await startRemote();
  await using _ = first;
  const path = await writeConfig(dir.path, {
    mcpServers: { every: every(), remote: { url: first.url, options: { required: true } } },
  });
  await using gateway = await startGateway(path);
  await gateway.waitState(["every", "remote"]);
  await using merged = await connectHttp(gateway.mcpUrl);
  let listChanged = 0;
  merged.setNotificationHandler(ToolListChangedNotificationSchema, () => void listChanged++);
  const remoteTools = async () =>
    (await merged.listTools()).tools.filter((tool) => tool.name.startsWith("remote__")).length;
  assert.ok(await remoteTools() > 0);

  await first.kill();
  // A call that cannot reach it is the surest sign it is gone.
  const error = await rejection(
    merged.callTool({ name: "remote__test_simple_text", arguments: {} }),
  );
  assert.match(error.message, /cannot reach http:\/\/127\.0\.0\.1:\d+/);
  const down = await gateway.waitState(["remote"], "failed", () => true, 15_000);
  assert.equal(down.httpStatus, 503, "remote is required");
  assert.equal(await remoteTools(), 0);
  assert.ok(listChanged >= 1);
  const other = await merged.callTool({ name: "every__test_simple_text", arguments: {} });
  assert.equal(textOf(other), "This is a simple text response for testing.");

  // Back on the same address: ready again, its tools with it.
  await using _second = await startRemote(first.port);
  const up = await gateway.waitState(["remote"], "ready", (s) => s.restarts >= 1);
  assert.equal(up.httpStatus, 200);
  assert.ok(await remoteTools() > 0);
  const result = await merged.callTool({ name: "remote__test_simple_text", arguments: {} });
  assert.equal(textOf(result), "This is a simple text response for testing.");
});
