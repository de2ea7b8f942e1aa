// serve over Streamable HTTP, end to end: the real CLI spawns the everything fixture per session
// and the SDK client drives every feature through it.

import assert from "node:assert/strict";
import { fixtureCommand, startServe } from "./support/cli.ts";
import { connectHttp, endSession, textOf } from "./support/client.ts";
import { health, waitFor } from "./support/wait.ts";
import { checkCatalog, checkRoundTrips, ROUND_TRIP_CAPABILITIES } from "./support/features.ts";

const everything = fixtureCommand("everything_stdio.ts");
const faulty = fixtureCommand("faulty_stdio.ts");

Deno.test("serve: Streamable HTTP carries tools, prompts, resources and completions", async () => {
  await using proxy = await startServe([], everything);
  await using client = await connectHttp(proxy.mcpUrl);
  await checkCatalog(client);
});

Deno.test("serve: progress, logging, subscriptions, sampling and elicitation round trips", async () => {
  await using proxy = await startServe([], everything);
  await using client = await connectHttp(proxy.mcpUrl, { capabilities: ROUND_TRIP_CAPABILITIES });
  await checkRoundTrips(client);
});

Deno.test("serve: each session gets its own child; DELETE ends it", async () => {
  await using proxy = await startServe([], faulty);
  const pids: number[] = [];
  const results = await Promise.all([0, 1].map(async () => {
    await using client = await connectHttp(proxy.mcpUrl);
    const first = JSON.parse(textOf(await client.callTool({ name: "whoami", arguments: {} })));
    const second = JSON.parse(textOf(await client.callTool({ name: "whoami", arguments: {} })));
    pids.push(first.pid);
    await endSession(client);
    return [first, second];
  }));
  assert.notEqual(pids[0], pids[1]);
  for (const [first, second] of results) {
    assert.deepEqual(first.pid, second.pid);
    assert.deepEqual([first.calls, second.calls], [1, 2], "no cross-talk between sessions");
  }
  // Both clients sent DELETE: their sessions and children are gone.
  await waitFor(async () => (await health(proxy.url)).children === 0);
  assert.deepEqual((await health(proxy.url)).sessions, { streamable: 0, sse: 0 });
});

Deno.test("serve: an idle session is reaped even while its GET stream is open", async () => {
  await using proxy = await startServe(["--session-timeout", "600ms"], faulty);
  const client = await connectHttp(proxy.mcpUrl);
  await client.callTool({ name: "whoami", arguments: {} });
  assert.deepEqual((await health(proxy.url)).children, 1);
  // The SDK client keeps its standalone GET stream open; the session must still be reaped.
  await waitFor(async () => (await health(proxy.url)).children === 0);
  await proxy.waitForLine(/session \S+ idle for \d+s; closed/);
  const after = await client.callTool({ name: "whoami", arguments: {} }).catch((e: Error) => e);
  assert.ok(after instanceof Error, "a reaped session is gone");
  assert.match(after.message, /404|Session not found/);
  await client.close();
});
