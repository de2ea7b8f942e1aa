// Runs the real CLI as a subprocess under exactly the permission flags the build bakes in, and
// waits on its readiness line (never on sleeps). Servers bind 127.0.0.1:0 and stop when disposed.

import { fileURLToPath } from "node:url";
import { pumpLines } from "../../src/lines.ts";
import { runFlags } from "../../src/permissions.ts";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const MAIN = fileURLToPath(new URL("../../main.ts", import.meta.url));

/** Path of a file in tests/fixtures. */
export function fixturePath(name: string): string {
  return fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
}

/** Command line that runs a stdio fixture with no permissions at all. */
export function fixtureCommand(name: string, ...args: string[]): string[] {
  return [Deno.execPath(), "run", "--no-prompt", "--quiet", fixturePath(name), ...args];
}

/** The CLI's `deno run` prefix, with the same flags as the build. */
export function cliCommand(flags: readonly string[] = runFlags()): string[] {
  return [Deno.execPath(), "run", "--quiet", ...flags, MAIN];
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion. */
export async function runCli(
  args: readonly string[],
  options: { flags?: readonly string[]; env?: Record<string, string>; stdin?: string } = {},
): Promise<CliResult> {
  const [exe, ...prefix] = cliCommand(options.flags);
  const child = new Deno.Command(exe!, {
    args: [...prefix, ...args],
    env: options.env,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const output = await child.output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** A running `mcp-proxy serve`; dispose it (await using) to SIGTERM it and wait for exit. */
export class ServeProcess {
  readonly process: Deno.ChildProcess;
  readonly stderr: string[] = [];
  /** Base URL, e.g. http://127.0.0.1:41234 */
  url = "";
  #waiters: Array<{ pattern: RegExp; resolve: (m: RegExpMatchArray) => void }> = [];
  #stdout = "";
  readonly stdoutDone: Promise<void>;

  constructor(process: Deno.ChildProcess) {
    this.process = process;
    void pumpLines(process.stderr, (line) => {
      this.stderr.push(line);
      for (const waiter of [...this.#waiters]) {
        const match = line.match(waiter.pattern);
        if (match) {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          waiter.resolve(match);
        }
      }
    }).catch(() => {});
    this.stdoutDone = pumpLines(process.stdout, (line) => {
      this.#stdout += line + "\n";
    }).catch(() => {});
  }

  get stdoutText(): string {
    return this.#stdout;
  }

  get stderrText(): string {
    return this.stderr.join("\n");
  }

  /** Resolves with the first stderr line (past or future) matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    for (const line of this.stderr) {
      const match = line.match(pattern);
      if (match) return Promise.resolve(match);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(`no stderr line matched ${pattern} in ${timeoutMs} ms:\n${this.stderrText}`),
        );
      }, timeoutMs);
      this.#waiters.push({
        pattern,
        resolve: (match) => {
          clearTimeout(timer);
          resolve(match);
        },
      });
      this.process.status.then(() => {
        clearTimeout(timer);
        reject(new Error(`the CLI exited before printing ${pattern}:\n${this.stderrText}`));
      });
    });
  }

  get mcpUrl(): URL {
    return new URL(`${this.url}/mcp`);
  }

  get sseUrl(): URL {
    return new URL(`${this.url}/sse`);
  }

  /** Sends a signal and waits for the exit status. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    try {
      this.process.kill(signal);
    } catch {
      // Already exited.
    }
    const timer = setTimeout(() => {
      try {
        this.process.kill("SIGKILL");
      } catch {
        // Gone.
      }
    }, 15_000);
    const status = await this.process.status;
    clearTimeout(timer);
    await this.stdoutDone;
    return status;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * Starts `mcp-proxy serve --port 0 <flags> -- <command>` and waits until it prints its URL.
 * `command` undefined serves the built-in demo.
 */
export async function startServe(
  flags: readonly string[],
  command?: readonly string[],
  options: { cliFlags?: readonly string[]; env?: Record<string, string> } = {},
): Promise<ServeProcess> {
  const [exe, ...prefix] = cliCommand(options.cliFlags);
  const args = [...prefix, "serve", "--port", "0", ...flags];
  if (command) args.push("--", ...command);
  const child = new Deno.Command(exe!, {
    args,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const serve = new ServeProcess(child);
  try {
    const [, url] = await serve.waitForLine(/Streamable HTTP: (http:\/\/\S+)\/mcp/);
    serve.url = url!;
  } catch (error) {
    await serve.stop("SIGKILL");
    throw error;
  }
  return serve;
}
