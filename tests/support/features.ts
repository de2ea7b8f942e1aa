// What every transport must carry, checked against the everything fixture with a connected SDK
// client: the catalog (tools, prompts, resources, completions) and the round trips (progress,
// logging, subscriptions, sampling, elicitation). Shared by the serve and connect tests.

import assert from "node:assert/strict";
import { type TestClient, textOf } from "./client.ts";
import { waitFor } from "./wait.ts";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from "./sdk.ts";

/** The capabilities a client needs for checkRoundTrips. */
export const ROUND_TRIP_CAPABILITIES = { sampling: {}, elicitation: {} };

/** Lists and calls tools, prompts, resources and completions through `client`. */
export async function checkCatalog(client: TestClient): Promise<void> {
  assert.equal(client.getServerVersion()?.name, "mcp-proxy-everything-server");
  assert.ok(client.getServerCapabilities()?.tools, "the child's capabilities come through");

  const { tools } = await client.listTools();
  assert.ok(tools.some((tool) => tool.name === "test_simple_text"));
  const simple = await client.callTool({ name: "test_simple_text", arguments: {} });
  assert.equal(textOf(simple), "This is a simple text response for testing.");
  const failing = await client.callTool({ name: "test_error_handling", arguments: {} });
  assert.equal(failing.isError, true);

  const { prompts } = await client.listPrompts();
  assert.ok(prompts.some((prompt) => prompt.name === "test_simple_prompt"));
  const simplePrompt = await client.getPrompt({ name: "test_simple_prompt" });
  assert.deepEqual(simplePrompt.messages[0]?.content, {
    type: "text",
    text: "This is a simple prompt for testing.",
  });
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
  const text = await client.readResource({ uri: "test://static-text" });
  assert.deepEqual(text.contents, [{
    uri: "test://static-text",
    mimeType: "text/plain",
    text: "This is the content of the static text resource.",
  }]);
  const { resourceTemplates } = await client.listResourceTemplates();
  assert.ok(resourceTemplates.some((t) => t.uriTemplate === "test://template/{id}/data"));
  const templated = await client.readResource({ uri: "test://template/42/data" });
  assert.match(JSON.stringify(templated.contents), /Data for ID: 42/);
  assert.deepEqual(await client.ping(), {});
  const completion = await client.complete({
    ref: { type: "ref/prompt", name: "test_prompt_with_arguments" },
    argument: { name: "arg1", value: "par" },
  });
  assert.deepEqual(completion.completion.values, ["paris", "park", "party"]);
}

/** Progress, logging, subscriptions, sampling and elicitation through `client`. */
export async function checkRoundTrips(client: TestClient): Promise<void> {
  const progress: number[] = [];
  const done = await client.callTool(
    { name: "test_tool_with_progress", arguments: {} },
    undefined,
    { onprogress: (p) => progress.push(p.progress) },
  );
  assert.equal(textOf(done), "Tool with progress executed successfully");
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
  assert.equal(textOf(update), "Sent update for test://watched-resource");
  // An unrelated notification: a server may send it on its GET stream, so it can trail the result.
  await waitFor(() => Promise.resolve(updates.length > 0));
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
  assert.equal(textOf(sampled), "LLM response: echo of hi");

  client.setRequestHandler(ElicitRequestSchema, (request) => {
    assert.equal(request.params.message, "Who are you?");
    return { action: "accept", content: { username: "ada", email: "ada@example.com" } };
  });
  const elicited = await client.callTool({
    name: "test_elicitation",
    arguments: { message: "Who are you?" },
  });
  assert.equal(
    textOf(elicited),
    'User response: action=accept, content={"username":"ada","email":"ada@example.com"}',
  );
}

/**
 * Cancels a call to faulty_stdio's wait_cancel once it has arrived (it reports progress), and
 * waits until the child has seen the cancellation.
 */
export async function checkCancellation(client: TestClient): Promise<void> {
  const abort = new AbortController();
  let arrived!: () => void;
  const started = new Promise<void>((resolve) => (arrived = resolve));
  const call = client.callTool({ name: "wait_cancel", arguments: {} }, undefined, {
    signal: abort.signal,
    onprogress: () => arrived(),
  });
  await started;
  abort.abort("changed my mind");
  await assert.rejects(call, /changed my mind|abort/i);
  await waitFor(async () =>
    textOf(await client.callTool({ name: "cancellations", arguments: {} })) === "1"
  );
}
