// Transport over a stdio MCP server we spawn with Deno.Command (never a shell): newline-delimited
// JSON-RPC on its stdin/stdout, its stderr relayed line by line, non-protocol stdout lines dropped.

import type { MessageExtraInfo, Transport } from "../sdk.ts";
import { formatError, permissionError, ProxyError } from "../errors.ts";
import {
  checkMessage,
  jsonChunks,
  type JSONRPCMessage,
  keepText,
  LARGE_MESSAGE,
  parseLargeMessage,
  type RequestId,
} from "../jsonrpc.ts";
import { framed, LineBuffer, pumpLines } from "../lines.ts";
import { log } from "../log.ts";
import { hostSystem, resolveCommand } from "./resolve_command.ts";

/**
 * Where a large message for a child's stdin is encoded, one at a time, shared by every child so
 * that many sessions' children hold one buffer, not one each (most messages come as the bytes the
 * client sent, needing none).
 */
const LARGE = new LineBuffer();

/** How long a child whose stdout ended may take to exit before it counts as hung. */
const STDOUT_GRACE_MS = 1000;

/** A transport that can say why it closed (used for the errors sent to pending requests). */
export interface UpstreamTransport extends Transport {
  /** Set once closed: e.g. "exited with code 1". */
  readonly closeReason?: string;
  /**
   * A message from the server; `extra.relatedRequestId`, when the transport knows it, is the
   * request on whose response stream it came (a Streamable HTTP server's own request or
   * notification made while handling that request).
   */
  onmessage?: (message: JSONRPCMessage, extra?: UpstreamExtra) => void;
}

/** What an upstream knows of a message beyond the message itself. */
export type UpstreamExtra = MessageExtraInfo & { relatedRequestId?: RequestId };

export interface ChildOptions {
  command: string;
  args: readonly string[];
  cwd?: string;
  /** Added to (and overriding) the inherited environment. */
  env?: Record<string, string>;
  /** Milliseconds between SIGTERM and SIGKILL when closing. */
  killGraceMs?: number;
}

/** Read size for a child's stderr (log lines); its stdout is read 64 KiB at a time. */
const STDERR_READ_SIZE = 4 * 1024;
const isWindows = Deno.build.os === "windows";
const live = new Set<Deno.ChildProcess>();

/** How many child processes this process has running now (for /health). */
export function runningChildren(): number {
  return live.size;
}

/** SIGKILLs every running child's process group at once (a second shutdown signal). */
export function killAllChildren(): void {
  for (const child of live) signal(child, "SIGKILL");
}

/** One child process speaking MCP over stdio. `start()` spawns it; `close()` ends it. */
export class ChildTransport implements UpstreamTransport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  closeReason?: string;
  #options: ChildOptions;
  #process?: Deno.ChildProcess;
  #writer?: WritableStreamDefaultWriter<Uint8Array>;
  #exited?: Promise<void>;
  #closing = false;
  #stdoutClosed = false;
  /** Its process has exited (set at once; closeReason follows once its output is read). */
  #hasExited = false;
  /** Its stdout ended (it can answer nothing more, even if it is still running). */
  #stdoutEnded = false;
  #label = "child";

  constructor(options: ChildOptions) {
    this.#options = options;
  }

  /** The child's process id once started. */
  get pid(): number | undefined {
    return this.#process?.pid;
  }

  /**
   * Started and still running: not exited (even if its exit is not reported yet, while what it
   * wrote is read), not closing, its stdout open.
   */
  get running(): boolean {
    // (closeReason is only set after the exit, so it needs no check of its own.)
    return this.#process !== undefined && !this.#hasExited && !this.#closing && !this.#stdoutEnded;
  }

  /** Spawns the child; again (e.g. a spare started ahead, then taken by a bridge) does nothing. */
  start(): Promise<void> {
    if (this.#process) return Promise.resolve();
    const { command, args, cwd, env } = this.#options;
    try {
      // On Windows: npx -> npx.cmd through cmd.exe, uvx -> uvx.exe (PATH x PATHEXT).
      const program = resolveCommand(command, args, hostSystem(env));
      this.#process = new Deno.Command(program.command, {
        args: program.args,
        windowsRawArguments: program.windowsRawArguments,
        cwd,
        env,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        // Its own process group, so close() also ends the grandchildren (npx -> node -> server).
        detached: !isWindows,
      }).spawn();
    } catch (error) {
      return Promise.reject(spawnError(command, cwd, error));
    }
    const child = this.#process;
    live.add(child);
    this.#label = `${basename(command)} ${child.pid}`;
    this.#writer = child.stdin.getWriter();
    this.#writer.closed.catch(() => {});
    log.debug(`started "${command}" as pid ${child.pid}`);
    const stdout = pumpLines(child.stdout, (line) => this.#onLine(line), undefined, {
      large: LARGE_MESSAGE,
      take: (bytes) => this.#onLarge(bytes),
    }).catch(() => {});
    // Log lines are short: a smaller buffer for each child's stderr (a longer line takes reads).
    pumpLines(child.stderr, (line) => log.child(this.#label, line), STDERR_READ_SIZE)
      .catch(() => {});
    // A server that closes its stdout but lives on can answer nothing more: it is ended, and
    // requests waiting on it get that as the reason (not a hang).
    void stdout.then(async () => {
      this.#stdoutEnded = true;
      await Promise.race([child.status, delay(STDOUT_GRACE_MS)]);
      if (this.#hasExited || this.#closing) return;
      this.#stdoutClosed = true;
      log.warn(`MCP server ${this.#label} closed its stdout but is still running; ending it`);
      await this.close();
    });
    this.#exited = child.status.then(async (status) => {
      this.#hasExited = true;
      live.delete(child);
      if (!this.#closing) {
        // It exited on its own: whatever it started goes too (no orphaned grandchildren).
        signal(child, "SIGTERM");
        const timer = setTimeout(() => signal(child, "SIGKILL"), this.#options.killGraceMs ?? 3000);
        Deno.unrefTimer(timer);
      }
      // Deliver what the child wrote before exiting, unless a grandchild holds stdout open.
      await Promise.race([stdout, delay(500)]);
      this.closeReason = this.#stdoutClosed
        ? "closed its stdout"
        : status.signal
        ? `was killed by ${status.signal}`
        : `exited with code ${status.code}`;
      if (!this.#closing) log.warn(`MCP server ${this.#label} ${this.closeReason}`);
      else log.debug(`MCP server ${this.#label} ${this.closeReason}`);
      this.onclose?.();
    });
    return Promise.resolve();
  }

  async send(message: JSONRPCMessage): Promise<void> {
    const writer = this.#writer;
    if (!writer || this.closeReason !== undefined || this.#closing) {
      throw new ProxyError("upstream", `MCP server ${this.closeReason ?? "is not running"}`);
    }
    const body = jsonChunks(message);
    const line = typeof body === "string" ? LARGE.line(body) : undefined;
    try {
      // One write from the shared buffer; else a large message and its newline are two,
      // queued together.
      const chunks = line ? [line] : framed("", body, "\n");
      await Promise.all(chunks.map((bytes) => writer.write(bytes)));
    } catch (error) {
      throw new ProxyError("upstream", `cannot write to MCP server ${this.#label}`, {
        cause: error,
      });
    } finally {
      if (line) LARGE.release();
    }
  }

  /** Closes stdin, sends SIGTERM (to the whole process group), then SIGKILL after the grace. */
  async close(): Promise<void> {
    const child = this.#process;
    if (!child || this.#closing) return await this.#exited;
    this.#closing = true;
    if (this.closeReason !== undefined) return await this.#exited;
    this.#writer?.close().catch(() => {});
    signal(child, "SIGTERM");
    const timer = setTimeout(() => signal(child, "SIGKILL"), this.#options.killGraceMs ?? 3000);
    try {
      await this.#exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** A large line, as bytes: handled here when parseLarge takes it, else as text (#onLine). */
  #onLarge(bytes: Uint8Array<ArrayBuffer>): boolean {
    const message = parseLargeMessage(bytes);
    if (message) this.#deliver(message);
    return message !== undefined;
  }

  #onLine(line: string): void {
    const text = line.trim();
    if (text.length === 0) return;
    let value: unknown;
    if (text.startsWith("{") || text.startsWith("[")) {
      try {
        value = JSON.parse(text);
      } catch {
        value = undefined;
      }
    }
    const messages = Array.isArray(value) ? value : [value];
    keepText(value, text);
    for (const item of messages) {
      if (item === undefined || checkMessage(item) !== undefined) {
        log.debug(`dropped a non-JSON-RPC stdout line from ${this.#label}: ${text.slice(0, 200)}`);
        return;
      }
    }
    for (const item of messages) this.#deliver(item as JSONRPCMessage);
  }

  #deliver(message: JSONRPCMessage): void {
    try {
      this.onmessage?.(message);
    } catch (error) {
      // A handler failing on one odd message must not stop the reading of the next ones.
      log.warn(`could not handle a message from ${this.#label}: ${formatError(error)}`);
    }
  }
}

function signal(child: Deno.ChildProcess, name: Deno.Signal): void {
  try {
    if (isWindows) child.kill(name);
    else Deno.kill(-child.pid, name);
  } catch {
    try {
      child.kill(name);
    } catch {
      // Already gone.
    }
  }
}

function spawnError(command: string, cwd: string | undefined, error: unknown): ProxyError {
  const denied = permissionError(error);
  if (denied) return denied;
  if (error instanceof Deno.errors.NotFound) {
    const where = cwd ? ` (or --cwd "${cwd}" does not exist)` : "";
    return new ProxyError(
      "spawn",
      `cannot start "${command}": command not found${where}; check the name and your PATH`,
      { cause: error },
    );
  }
  return new ProxyError("spawn", `cannot start "${command}"`, { cause: error });
}

function basename(command: string): string {
  return command.split(/[\\/]/).pop() || command;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    Deno.unrefTimer(timer);
  });
}
