// serve over Streamable HTTP, end to end: the real CLI spawns the everything fixture per session
// and the SDK client drives every feature through it.

import assert from "node:assert/strict";
import { fixtureCommand, startServe } from "./support/cli.ts";
import { connectHttp, endSession, textOf } from "./support/client.ts";
import { health, waitFor } from "./support/wait.ts";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from "./support/sdk.ts";

const everything = fixtureCommand("everything_stdio.ts");
const faulty = fixtureCommand("faulty_stdio.ts");

Deno.test("serve: Streamable HTTP carries tools, prompts, resources and completions", async () => {
  await using proxy = await startServe([], everything);
  await using client = await connectHttp(proxy.mcpUrl);
  assert.deepEqual(client.getServerVersion()?.name, "mcp-proxy-everything-server");

  const { tools } = await client.listTools();
  assert.ok(tools.some((tool) => tool.name === "test_simple_text"));
  const simple = await client.callTool({ name: "test_simple_text", arguments: {} });
  assert.deepEqual(textOf(simple), "This is a simple text response for testing.");
  const failing = await client.callTool({ name: "test_error_handling", arguments: {} });
  assert.deepEqual(failing.isError, true);

  const { prompts } = await client.listPrompts();
  assert.ok(prompts.some((prompt) => prompt.name === "test_prompt_with_arguments"));
  const prompt = await client.getPrompt({
    name: "test_prompt_with_arguments",
    arguments: { arg1: "a", arg2: "b" },
  });
  assert.deepEqual(prompt.messages[0]?.content, {
    type: "text",
    text: "Prompt with arguments: arg1='a', arg2='b'",
  });

  const { resources } = await client.listResources();
  assert.ok(resources.some((resource) => resource.uri === "test://static-text"));
  const read = await client.readResource({ uri: "test://template/42/data" });
  assert.match(JSON.stringify(read.contents), /Data for ID: 42/);
  const completion = await client.complete({
    ref: { type: "ref/prompt", name: "test_prompt_with_arguments" },
    argument: { name: "arg1", value: "par" },
  });
  assert.deepEqual(completion.completion.values, ["paris", "park", "party"]);
  assert.deepEqual(await client.ping(), {});
});

Deno.test("serve: progress, logging, subscriptions, sampling and elicitation round trips", async () => {
  await using proxy = await startServe([], everything);
  await using client = await connectHttp(proxy.mcpUrl, {
    capabilities: { sampling: {}, elicitation: {} },
  });

  const progress: number[] = [];
  await client.callTool({ name: "test_tool_with_progress", arguments: {} }, undefined, {
    onprogress: (p) => progress.push(p.progress),
  });
  assert.deepEqual(progress, [0, 50, 100]);

  const logs: string[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    logs.push(String(n.params.data));
  });
  await client.setLoggingLevel("info");
  await client.callTool({ name: "test_tool_with_logging", arguments: {} });
  assert.deepEqual(logs, [
    "Tool execution started",
    "Tool processing data",
    "Tool execution completed",
  ]);

  const updates: string[] = [];
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
    updates.push(n.params.uri);
  });
  await client.subscribeResource({ uri: "test://watched-resource" });
  const update = await client.callTool({ name: "test_resource_update", arguments: {} });
  assert.deepEqual(textOf(update), "Sent update for test://watched-resource");
  assert.deepEqual(updates, ["test://watched-resource"]);

  client.setRequestHandler(CreateMessageRequestSchema, (request) => {
    const content = request.params.messages[0]?.content as { text?: string };
    return {
      role: "assistant",
      content: { type: "text", text: `echo of ${content.text}` },
      model: "test-model",
    };
  });
  const sampled = await client.callTool({ name: "test_sampling", arguments: { prompt: "hi" } });
  assert.deepEqual(textOf(sampled), "LLM response: echo of hi");

  client.setRequestHandler(ElicitRequestSchema, (request) => {
    assert.deepEqual(request.params.message, "Who are you?");
    return { action: "accept", content: { username: "ada", email: "ada@example.com" } };
  });
  const elicited = await client.callTool({
    name: "test_elicitation",
    arguments: { message: "Who are you?" },
  });
  assert.deepEqual(
    textOf(elicited),
    'User response: action=accept, content={"username":"ada","email":"ada@example.com"}',
  );
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
