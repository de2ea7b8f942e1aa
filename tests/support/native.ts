// Real MCP servers for connect and serve <url> to talk to: the everything fixture over native
// Streamable HTTP, or over legacy SSE only (a POST to its URL answers 405, or 404). Disposable.

import { pumpLines } from "../../src/lines.ts";
import { fixturePath } from "./cli.ts";

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
  const process = new Deno.Command(Deno.execPath(), {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  void pumpLines(process.stderr, () => {}).catch(() => {});
  const url = await new Promise<string>((resolve, reject) => {
    void pumpLines(process.stdout, (line) => {
      const match = /^listening (\S+)/.exec(line);
      if (match) resolve(match[1]!);
    }).catch(() => {});
    process.status.then(() => reject(new Error(`the ${kind} fixture exited before listening`)));
  });
  const admin = (path: string) => new URL(path, url);
  let killed = false;
  const kill = async () => {
    if (killed) return;
    killed = true;
    try {
      process.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await process.status;
  };
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
