// Real MCP servers for connect and serve <url> to talk to: the everything fixture over native
// Streamable HTTP, or over legacy SSE only (a POST to its URL answers 405, or 404). Disposable.

import { fixturePath } from "./cli.ts";
import { startListening } from "./listening.ts";

export type NativeKind = "http" | "sse-405" | "sse-404";

export interface NativeServer extends AsyncDisposable {
  /** The MCP URL: .../mcp for http, .../sse for the SSE-only kinds. */
  readonly url: string;
  readonly process: Deno.ChildProcess;
  /** GET /admin/stats: sessions, initialized, deletes, lastHeaders (http kind). */
  stats(): Promise<{
    sessions: number;
    initialized: number;
    deletes: number;
    lastHeaders: Record<string, string>;
    gets: number;
    resumes: string[];
  }>;
  /** POST /admin/forget: the server forgets every session (http kind). */
  forget(): Promise<void>;
  /** POST /admin/drop: the server ends every SSE connection (SSE kinds). */
  drop(): Promise<void>;
  kill(): Promise<void>;
}

/** Starts a native fixture server on 127.0.0.1:0 and waits for its "listening" line. */
export async function startNative(kind: NativeKind = "http"): Promise<NativeServer> {
  const args = kind === "http"
    ? ["run", "--no-prompt", "--allow-net=127.0.0.1", fixturePath("everything_http.ts"), "0"]
    : [
      "run",
      "--no-prompt",
      "--allow-net=127.0.0.1",
      "--allow-env",
      fixturePath("sse_only_http.ts"),
      "--post-status",
      kind === "sse-404" ? "404" : "405",
    ];
  const { url, process, kill } = await startListening(args, `the ${kind} fixture`);
  const admin = (path: string) => new URL(path, url);
  return {
    url,
    process,
    stats: async () => await (await fetch(admin("/admin/stats"))).json(),
    forget: async () => {
      await (await fetch(admin("/admin/forget"), { method: "POST" })).body?.cancel();
    },
    drop: async () => {
      await (await fetch(admin("/admin/drop"), { method: "POST" })).body?.cancel();
    },
    kill,
    [Symbol.asyncDispose]: kill,
  };
}

/** The JSON answer of a hand-written remote to `initialize`, giving the session `session`. */
export function initializeAnswer(
  message: { id: number | string; params: { protocolVersion: string } },
  session: string,
): Response {
  return Response.json({
    jsonrpc: "2.0",
    id: message.id,
    result: {
      protocolVersion: message.params.protocolVersion,
      capabilities: { tools: {} },
      serverInfo: { name: "inline", version: "1" },
    },
  }, { headers: { "mcp-session-id": session } });
}
