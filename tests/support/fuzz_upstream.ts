// Test fixture for the fuzz tests: a stdio MCP server written by hand, without the SDK (which drops
// messages it finds odd, so a request would never be answered): initialize, ping, tools/list and
// tools/call "echo" as MCP has them; any other request is answered {"echo": <the request as it
// arrived>}, so a test sees exactly what the proxy forwarded. Needs no permissions.

const encoder = new TextEncoder();
const writer = Deno.stdout.writable.getWriter();

type Message = { id?: unknown; method?: unknown; params?: Record<string, unknown> };

function resultOf(message: Message): unknown {
  const params = typeof message.params === "object" && message.params !== null
    ? message.params
    : {};
  switch (message.method) {
    case "initialize":
      return {
        protocolVersion: typeof params.protocolVersion === "string"
          ? params.protocolVersion
          : "2025-11-25",
        capabilities: { tools: {} },
        serverInfo: { name: "fuzz-upstream", version: "1.0.0" },
      };
    case "ping":
      return {};
    case "tools/list":
      return {
        tools: [{
          name: "echo",
          inputSchema: { type: "object", properties: { text: { type: "string" } } },
        }],
      };
    case "tools/call": {
      const text = (params.arguments as { text?: unknown } | undefined)?.text;
      return { content: [{ type: "text", text: String(text) }] };
    }
    default:
      return { echo: message };
  }
}

async function handle(message: unknown): Promise<void> {
  if (typeof message !== "object" || message === null || Array.isArray(message)) return;
  const m = message as Message;
  if (typeof m.method !== "string" || !("id" in m)) return;
  let line: string;
  try {
    line = JSON.stringify({ jsonrpc: "2.0", id: m.id, result: resultOf(m) });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    line = JSON.stringify({
      jsonrpc: "2.0",
      id: m.id,
      error: { code: -32603, message: `fuzz-upstream cannot echo this request: ${reason}` },
    });
  }
  await writer.write(encoder.encode(line + "\n"));
}

if (import.meta.main) {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of Deno.stdin.readable) {
    pending += decoder.decode(chunk, { stream: true });
    let newline = pending.indexOf("\n");
    while (newline !== -1) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      newline = pending.indexOf("\n");
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        continue;
      }
      for (const item of Array.isArray(value) ? value : [value]) await handle(item);
    }
  }
}
