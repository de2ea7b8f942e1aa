// The bundled demo MCP server, served when `serve` gets no command: it runs in-process (no child,
// no --allow-run) so `deno task start` works on a fresh machine with nothing else installed.

import { InMemoryTransport, McpServer } from "../sdk.ts";
import { z } from "zod";
import type { UpstreamTransport } from "./child.ts";

/** A fresh demo server, connected in memory; the returned transport is its client side. */
export function demoUpstream(version: string): UpstreamTransport {
  const server = new McpServer({ name: "mcp-proxy-demo", version });
  server.registerTool("echo", {
    description: "Returns the text it was given.",
    inputSchema: { text: z.string().describe("Text to echo back") },
  }, ({ text }) => ({ content: [{ type: "text", text }] }));
  server.registerTool("add", {
    description: "Adds two numbers.",
    inputSchema: { a: z.number(), b: z.number() },
  }, ({ a, b }) => ({ content: [{ type: "text", text: String(a + b) }] }));
  server.registerTool("count", {
    description: "Counts to n, sending a progress notification per step.",
    inputSchema: { n: z.number().int().min(1).max(100) },
  }, async ({ n }, extra) => {
    const progressToken = extra._meta?.progressToken;
    for (let step = 1; step <= n; step++) {
      if (progressToken !== undefined) {
        await extra.sendNotification({
          method: "notifications/progress",
          params: { progressToken, progress: step, total: n },
        });
      }
    }
    return { content: [{ type: "text", text: `counted to ${n}` }] };
  });
  server.registerResource("readme", "demo://readme", {
    description: "What this demo is.",
    mimeType: "text/plain",
  }, (uri) => ({
    contents: [{
      uri: uri.href,
      mimeType: "text/plain",
      text: "This is mcp-proxy's built-in demo server. Serve your own with: " +
        "mcp-proxy serve -- <command> [args...]",
    }],
  }));
  server.registerPrompt("greet", {
    description: "A greeting for someone.",
    argsSchema: { name: z.string() },
  }, ({ name }) => ({
    messages: [{ role: "user", content: { type: "text", text: `Say hello to ${name}.` } }],
  }));
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  void server.connect(serverSide);
  return clientSide;
}
