// serve passes everything through untouched: cancellation reaches the child, roots requests reach
// the client, and the child gets --env, --cwd and our inherited environment.

import assert from "node:assert/strict";
import { fixtureCommand, fixturePath, startServe } from "./support/cli.ts";
import { connectHttp, connectSse, textOf } from "./support/client.ts";
import { ListRootsRequestSchema } from "./support/sdk.ts";
import { messagesOf, RawSession, readAll } from "./support/raw_session.ts";
import { checkCancellation } from "./support/features.ts";
import { reserialized, verbatimCall } from "./support/verbatim.ts";

for (
  const [transport, connect] of [["Streamable HTTP", connectHttp], ["SSE", connectSse]] as const
) {
  Deno.test(`serve (${transport}): a cancelled request is cancelled in the child`, async () => {
    await using proxy = await startServe([], fixtureCommand("faulty_stdio.ts"));
    await using client = await connect(transport === "SSE" ? proxy.sseUrl : proxy.mcpUrl);
    await checkCancellation(client);
  });

  Deno.test(`serve (${transport}): roots/list from the child reaches the client`, async () => {
    await using proxy = await startServe([], fixtureCommand("faulty_stdio.ts"));
    await using client = await connect(transport === "SSE" ? proxy.sseUrl : proxy.mcpUrl, {
      capabilities: { roots: { listChanged: true } },
    });
    const roots = [{ uri: "file:///work/project", name: "project" }];
    client.setRequestHandler(ListRootsRequestSchema, () => ({ roots }));
    const result = await client.callTool({ name: "roots", arguments: {} });
    assert.deepEqual(JSON.parse(textOf(result)), roots);
    await client.sendRootsListChanged();
  });
}

Deno.test("serve: the child gets --env, --cwd and the inherited environment", async () => {
  const dir = fixturePath(".");
  const command = [
    Deno.execPath(),
    "run",
    "--no-prompt",
    "--quiet",
    "--allow-env=FROM_FLAG,FROM_PARENT",
    `--allow-read=${dir}`,
    fixturePath("faulty_stdio.ts"),
  ];
  await using proxy = await startServe(
    ["--env", "FROM_FLAG=flag value", "--env", "FROM_PARENT=overridden?", "--cwd", dir],
    command,
    { env: { FROM_PARENT: "parent" } },
  );
  await using client = await connectHttp(proxy.mcpUrl);
  const getenv = async (name: string) =>
    textOf(await client.callTool({ name: "getenv", arguments: { name } }));
  assert.equal(await getenv("FROM_FLAG"), "flag value");
  assert.equal(await getenv("FROM_PARENT"), "overridden?", "--env wins over the inherited value");
  assert.equal(
    textOf(await client.callTool({ name: "cwd", arguments: {} })).replace(/\/$/, ""),
    dir.replace(/\/$/, ""),
  );
});

Deno.test("serve: the child inherits the proxy's environment without --allow-env", async () => {
  const command = [
    Deno.execPath(),
    "run",
    "--no-prompt",
    "--quiet",
    "--allow-env=FROM_PARENT",
    fixturePath("faulty_stdio.ts"),
  ];
  await using proxy = await startServe([], command, { env: { FROM_PARENT: "parent" } });
  await using client = await connectHttp(proxy.mcpUrl);
  const value = await client.callTool({ name: "getenv", arguments: { name: "FROM_PARENT" } });
  assert.equal(textOf(value), "parent");
});

Deno.test("serve: multi-megabyte results and requests pass intact", async () => {
  await using proxy = await startServe([], fixtureCommand("faulty_stdio.ts"));
  await using client = await connectHttp(proxy.mcpUrl);
  const big = textOf(await client.callTool({ name: "big", arguments: { kb: 8192 } }));
  assert.equal(big.length, 8192 * 1024);
  assert.ok(/^x+$/.test(big));
  const text = "\u00e9".repeat(1024 * 1024); // 2 MiB of UTF-8, under the 4 MiB default body limit
  assert.equal(textOf(await client.callTool({ name: "echo", arguments: { text } })), text);
});

Deno.test("serve: large requests in flight together each reach the child whole, under a tool filter too", async () => {
  // Under a filter each goes to the child as parsed, so encoded by us: ASCII and not, sizes
  // around the reused encoding buffer's bounds, all at once (written while others wait), to two
  // children.
  const texts = [
    "a".repeat(1024 * 1024),
    "\u00e9\u20ac\u{1f600}".repeat(60_000),
    "b".repeat(100_000),
    "c".repeat(3 * 1024 * 1024),
    "d".repeat(70_000),
  ];
  for (const filter of [[], ["--allow-tool", "echo"]]) {
    await using proxy = await startServe(filter, fixtureCommand("faulty_stdio.ts"));
    // Two sessions: two children, whose writes share one encoding buffer.
    await using first = await connectHttp(proxy.mcpUrl);
    await using second = await connectHttp(proxy.mcpUrl);
    const answers = await Promise.all(
      [first, second].flatMap((client) =>
        texts.map((text) => client.callTool({ name: "echo", arguments: { text } }))
      ),
    );
    answers.forEach((answer, i) => {
      assert.ok(textOf(answer) === texts[i % texts.length], `${filter} ${i}`);
    });
  }
});

Deno.test("serve: multi-megabyte messages pass intact on event streams (/mcp, /sse)", async () => {
  await using proxy = await startServe([], fixtureCommand("faulty_stdio.ts"));
  // Over 64 KiB, so each event is written apart from its framing; multi-byte characters.
  const text = "\u00e9\u20ac\u{1f600}x".repeat(200_000);
  // A batch's answers always come on an event stream.
  const session = await RawSession.open(proxy.mcpUrl);
  const response = await session.post([RawSession.call("b1", "echo", { text })]);
  assert.equal(response.headers.get("content-type"), "text/event-stream");
  const [answer] = messagesOf(await readAll(response.body!));
  assert.equal(answer?.id, "b1");
  assert.equal(textOf(answer!.result), text);
  await session.delete();
  await using sse = await connectSse(proxy.sseUrl);
  assert.equal(textOf(await sse.callTool({ name: "echo", arguments: { text } })), text);
  const big = textOf(await sse.callTool({ name: "big", arguments: { kb: 4096 } }));
  assert.equal(big.length, 4096 * 1024);
  assert.ok(/^x+$/.test(big));
});

Deno.test("serve: a large answer reaches the client as the server wrote it, not re-serialized", async () => {
  await using proxy = await startServe([], fixtureCommand("faulty_stdio.ts"));
  const session = await RawSession.open(proxy.mcpUrl);
  const expected = `{"jsonrpc":"2.0", "id":"v1", "result":{"content":` +
    `[{"type":"text", "text":"caf\\u00e9 ${"x".repeat(20_000)}"}]}}`;
  // A lone quick answer comes as the JSON body; a slow one as an event on the POST's stream.
  const response = await session.post(RawSession.call("v1", "verbatim"));
  const type = response.headers.get("content-type") ?? "";
  const body = await response.text();
  const data = type.startsWith("text/event-stream")
    ? body.split("\n").filter((line) => line.startsWith("data: ")).map((line) => line.slice(6))
    : [body];
  assert.deepEqual(data.filter((text) => text.includes('"v1"')), [expected]);
  await session.delete();
});

Deno.test("serve: a large request reaches the server as the client wrote it; under a tool filter, as parsed", async () => {
  const plain = verbatimCall("p1", `"name":"heard"`);
  const dup = verbatimCall("d1", `"name":"hidden", "name":"heard"`);
  await using child = await startServe([], fixtureCommand("raw_stdio.ts"));
  // In front of a child; in front of a URL (the same child behind serve); with a tool filter.
  await using url = await startServe([child.mcpUrl.href]);
  await using filtered = await startServe(
    ["--allow-tool", "heard"],
    fixtureCommand("raw_stdio.ts"),
  );
  const cases = [[child, plain], [url, plain], [filtered, reserialized(plain)]] as const;
  for (const [proxy, expected] of cases) {
    assert.equal(await heard(proxy.mcpUrl, plain), expected, proxy.mcpUrl.href);
  }
  assert.equal(await heard(filtered.mcpUrl, dup), reserialized(dup), "the name the filter judged");
  assert.ok(!reserialized(dup).includes("hidden"));
});

Deno.test("serve: a large request with a byte order mark or bytes that are not UTF-8 reaches the server as its decoded text", async () => {
  const plain = verbatimCall("b1", `"name":"heard"`);
  const bytes = new TextEncoder().encode(plain);
  const withBom = new Uint8Array([0xef, 0xbb, 0xbf, ...bytes]);
  // A lone 0xff inside the padding: the server must read U+FFFD there, in valid UTF-8.
  const at = plain.indexOf("xxx");
  const invalid = new Uint8Array([...bytes.subarray(0, at), 0xff, ...bytes.subarray(at + 1)]);
  const replaced = `${plain.slice(0, at)}\ufffd${plain.slice(at + 1)}`;
  await using child = await startServe([], fixtureCommand("raw_stdio.ts"));
  await using url = await startServe([child.mcpUrl.href]);
  for (const proxy of [child, url]) {
    assert.equal(await heard(proxy.mcpUrl, withBom, "b1"), plain, proxy.mcpUrl.href);
    assert.equal(await heard(proxy.mcpUrl, invalid, "b1"), replaced, proxy.mcpUrl.href);
    assert.equal(await heard(proxy.mcpUrl, bytes, "b1"), plain, proxy.mcpUrl.href);
  }
});

/** The line the raw_stdio fixture read for the tools/call `body`, POSTed as it is. */
async function heard(
  url: URL,
  body: string | Uint8Array<ArrayBuffer>,
  id?: string,
): Promise<string> {
  const session = await RawSession.open(url);
  const response = await fetch(url, { method: "POST", headers: session.headers(), body });
  const type = response.headers.get("content-type") ?? "";
  const messages = type.startsWith("text/event-stream")
    ? messagesOf(await readAll(response.body!))
    : [await response.json()];
  await session.delete();
  const answer = messages.find((message) => message.id === (id ?? JSON.parse(body as string).id));
  return textOf(answer?.result);
}
