// What scripts/bench.ts measures: the native bench server (the baseline) and our proxy in each
// mode, under exactly runFlags() (never -A); the npm peers are in bench_peers.ts. Each target
// knows how to start, how a client opens a session on it, and how to stop it. Loopback only.

import { fileURLToPath } from "node:url";
import { pumpLines } from "../src/lines.ts";
import { runFlags, V8_FLAGS } from "../src/permissions.ts";
import { fixturePath, MAIN } from "../tests/support/cli.ts";
import {
  type Connect,
  type Endpoint,
  sdkConnect,
  sdkStdio,
} from "../tests/fixtures/bench_client.ts";
import { LineStdioClientTransport } from "../tests/fixtures/line_stdio.ts";

export type Direction =
  | "baseline"
  | "stdio, no proxy"
  | "HTTP hop, no MCP"
  | "stdio hop, no MCP"
  | "serve /mcp"
  | "serve /mcp --prewarm 1"
  | "serve /mcp --stateless"
  | "serve /sse"
  | "serve <url>"
  | "connect";

/** A started target. */
export interface Running {
  /**
   * The process whose CPU and RSS count as the proxy's; undefined for a stdio-facing target,
   * whose process the client spawns (its session knows the pid).
   */
  pid(): number | undefined;
  /** Where a client opens a session on it. */
  endpoint: Endpoint;
  /** Recent output, for error messages. */
  output(): string;
  stop(): Promise<void>;
}

export interface Target {
  /** Stable key, e.g. "ours/serve-mcp". */
  id: string;
  /** Who: "native", "mcp-proxy (ours)", "supergateway 4.0.0". */
  implementation: string;
  direction: Direction;
  /** Needs the native server running as its remote upstream. */
  remote: boolean;
  /** Spawns stdio children, so children left after sessions close are counted. */
  spawnsChildren: boolean;
  /** Children it keeps started ahead on purpose (--prewarm): not counted as left behind. */
  spares?: number;
  /** Serves many client sessions (false for stdio-facing targets: one client each). */
  multiSession: boolean;
  /** Starts it (for stdio-facing targets the process starts with the first session). */
  start(remoteUrl: string | undefined): Promise<Running>;
}

const ROOT_DIR = fileURLToPath(new URL("../", import.meta.url));
const BENCH_SERVER = fixturePath("bench_server.ts");
const BENCH_FORWARDER = fixturePath("bench_forwarder.ts");
const BENCH_STDIO_FORWARDER = fixturePath("bench_stdio_forwarder.ts");

/** A bare forwarder fixture (a hop row) to `remote`: loopback only, under our V8 flags. */
function hopCommand(fixture: string, remote: string): string[] {
  return [
    Deno.execPath(),
    "run",
    "--no-prompt",
    "--quiet",
    "--allow-net=127.0.0.1",
    ...V8_FLAGS,
    fixture,
    remote,
  ];
}
/**
 * How the benchmark's own ends frame stdio: "lines" reads each message in one pass, as a Node or
 * Python client or server does; "sdk" uses the SDK's stdio transports, whose reader under Deno
 * searches all it holds again after every chunk (see tests/fixtures/line_stdio.ts).
 */
export type StdioFraming = "lines" | "sdk";

/** The stdio server every proxy spawns: our benchmark fixture, with no permissions. */
export function stdioServer(framing: StdioFraming): string[] {
  const server = [Deno.execPath(), "run", "--no-prompt", "--quiet", BENCH_SERVER];
  return framing === "sdk" ? [...server, "--sdk-stdio"] : server;
}

const CONNECT_TIMEOUT_MS = 30_000;

/** A process we started, with its output kept (the last lines) and a readiness pattern. */
class Spawned {
  readonly process: Deno.ChildProcess;
  readonly #lines: string[] = [];
  #waiter: { pattern: RegExp; resolve: (m: RegExpMatchArray) => void } | undefined;

  constructor(command: string, args: string[], env?: Record<string, string>) {
    this.process = new Deno.Command(command, {
      args,
      env,
      cwd: ROOT_DIR,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    for (const stream of [this.process.stdout, this.process.stderr]) {
      void pumpLines(stream, (line) => this.#line(line)).catch(() => {});
    }
  }

  #line(line: string): void {
    this.#lines.push(line);
    if (this.#lines.length > 50) this.#lines.shift();
    const match = this.#waiter && line.match(this.#waiter.pattern);
    if (match) {
      this.#waiter!.resolve(match);
      this.#waiter = undefined;
    }
  }

  output(): string {
    return this.#lines.join("\n");
  }

  /** The first line (stdout or stderr) matching `pattern`; rejects on exit or timeout. */
  waitFor(pattern: RegExp): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no line matched ${pattern}:\n${this.output()}`)),
        CONNECT_TIMEOUT_MS,
      );
      this.#waiter = {
        pattern,
        resolve: (match) => {
          clearTimeout(timer);
          resolve(match);
        },
      };
      this.process.status.then(() => {
        clearTimeout(timer);
        reject(new Error(`exited before it was ready:\n${this.output()}`));
      });
    });
  }

  async stop(): Promise<void> {
    try {
      this.process.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    const timer = setTimeout(() => {
      try {
        this.process.kill("SIGKILL");
      } catch {
        // Gone.
      }
    }, 5_000);
    await this.process.status;
    clearTimeout(timer);
  }
}

/** A target served over HTTP by a process that prints a line from which its URL follows. */
export async function startHttp(
  command: string[],
  ready: RegExp,
  urlOf: (match: RegExpMatchArray) => URL,
  kind: "http" | "sse",
  env?: Record<string, string>,
): Promise<Running> {
  const spawned = new Spawned(command[0]!, command.slice(1), env);
  let url: URL;
  try {
    url = urlOf(await spawned.waitFor(ready));
  } catch (error) {
    await spawned.stop();
    throw error;
  }
  return {
    pid: () => spawned.process.pid,
    endpoint: { kind, url: url.href },
    output: () => spawned.output(),
    stop: () => spawned.stop(),
  };
}

/** A stdio-facing target: the client spawns it as its stdio server, once. */
export function startStdio(command: string[], env?: Record<string, string>): Running {
  return {
    pid: () => undefined,
    endpoint: { kind: "stdio", command: command[0]!, args: command.slice(1), env, cwd: ROOT_DIR },
    output: () => "",
    stop: () => Promise.resolve(),
  };
}

/**
 * The benchmark's own client, in this process: the SDK's Client, over stdio with one-pass line
 * framing ("lines") or the SDK's StdioClientTransport ("sdk").
 */
export function denoConnect(framing: StdioFraming): Connect {
  return sdkConnect((endpoint, keep) =>
    framing === "lines"
      ? new LineStdioClientTransport({ ...endpoint, onStderr: keep })
      : sdkStdio(endpoint, keep)
  );
}

/** Our CLI under the build's permission flags (and V8 flags, when a run is about them). */
/** How a second copy of our proxy runs next to the first, in every round. */
export interface Variant {
  /** V8 flags for it (ids end in `+v8`). */
  v8Flags?: string;
  /**
   * Another checkout to run it from, with its own deno.json and its own runFlags() (ids end in
   * `@<label>`).
   */
  checkout?: { dir: string; label: string; runFlags: string[] };
}

function ourCli(variant: Variant = {}): string[] {
  const v8 = variant.v8Flags ? [`--v8-flags=${variant.v8Flags}`] : [];
  const dir = variant.checkout?.dir;
  const main = dir ? [`--config=${dir}/deno.json`, `${dir}/main.ts`] : [MAIN];
  // V8 applies --v8-flags in order: the variant's come last, so they win over runFlags()'s.
  const flags = variant.checkout?.runFlags ?? runFlags();
  return [Deno.execPath(), "run", "--quiet", ...flags, ...v8, ...main];
}
const OUR_READY = /Streamable HTTP: (http:\/\/\S+)\/mcp/;
const OUR_NAME = "mcp-proxy (ours)";

/**
 * The native server and our proxy in every mode. With a variant, our proxy so run only, with ids
 * ending in `+v8` or `@<label>`, so that a run can measure both side by side.
 */
export function ourTargets(framing: StdioFraming, variant?: Variant): Target[] {
  const STDIO_SERVER = stdioServer(framing);
  const OUR_CLI = ourCli(variant);
  const OURS = variant?.v8Flags
    ? `mcp-proxy (ours, V8 ${variant.v8Flags})`
    : variant?.checkout
    ? `mcp-proxy (ours at ${variant.checkout.label})`
    : OUR_NAME;
  const serve = (path: "mcp" | "sse", flag?: "--stateless" | "--prewarm"): Target => ({
    id: `ours/serve-${path}${flag ? `-${flag.slice(2)}` : ""}`,
    implementation: OURS,
    direction: `serve /${path}${
      flag === "--prewarm" ? " --prewarm 1" : flag ? ` ${flag}` : ""
    }` as Direction,
    remote: false,
    spawnsChildren: flag !== "--stateless",
    spares: flag === "--prewarm" ? 1 : undefined,
    multiSession: true,
    start: () =>
      startHttp(
        [
          ...OUR_CLI,
          "serve",
          "--port",
          "0",
          ...(flag === "--prewarm" ? ["--prewarm", "1"] : flag ? [flag] : []),
          "--",
          ...STDIO_SERVER,
        ],
        OUR_READY,
        (m) => new URL(`${m[1]}/${path}`),
        path === "mcp" ? "http" : "sse",
      ),
  });
  const targets: Target[] = [
    {
      id: "native",
      implementation: "native (no proxy)",
      direction: "baseline",
      remote: false,
      spawnsChildren: false,
      multiSession: true,
      start: () => startNative(),
    },
    {
      // Not a baseline for ratios: it shows what the stdio server and the stdio client cost by
      // themselves, the share of serve's and connect's figures that is not the proxy's.
      id: "native-stdio",
      implementation: framing === "sdk"
        ? "bench server over stdio, SDK transports"
        : "bench server over stdio",
      direction: "stdio, no proxy",
      remote: false,
      spawnsChildren: false,
      multiSession: false,
      start: () => Promise.resolve(startStdio(STDIO_SERVER)),
    },
    {
      // Not a proxy either: what a bare Deno process in the middle costs (Deno.serve and
      // fetch, bodies passed through unread, under our V8 flags), the floor under serve <url>.
      id: "http-hop",
      implementation: "Deno.serve + fetch, bodies passed through",
      direction: "HTTP hop, no MCP",
      remote: true,
      spawnsChildren: false,
      multiSession: true,
      start: (remote) =>
        startHttp(
          hopCommand(BENCH_FORWARDER, remote!),
          /^listening (\S+)/,
          (m) => new URL(m[1]!),
          "http",
        ),
    },
    {
      // The same for connect: a bare Deno process between a stdio client and the remote (lines
      // POSTed as they are, answers written as they come), the floor under connect.
      id: "stdio-hop",
      implementation: "stdin lines POSTed, answers to stdout",
      direction: "stdio hop, no MCP",
      remote: true,
      spawnsChildren: false,
      multiSession: false,
      start: (remote) => Promise.resolve(startStdio(hopCommand(BENCH_STDIO_FORWARDER, remote!))),
    },
    serve("mcp"),
    serve("mcp", "--prewarm"),
    serve("mcp", "--stateless"),
    serve("sse"),
    {
      id: "ours/serve-url",
      implementation: OURS,
      direction: "serve <url>",
      remote: true,
      spawnsChildren: false,
      multiSession: true,
      start: (remote) =>
        startHttp(
          [...OUR_CLI, "serve", "--port", "0", remote!],
          OUR_READY,
          (m) => new URL(`${m[1]}/mcp`),
          "http",
        ),
    },
    {
      id: "ours/connect",
      implementation: OURS,
      direction: "connect",
      remote: true,
      spawnsChildren: false,
      multiSession: false,
      start: (remote) => Promise.resolve(startStdio([...OUR_CLI, "connect", remote!])),
    },
  ];
  if (!variant) return targets;
  const suffix = variant.v8Flags ? "+v8" : `@${variant.checkout!.label}`;
  return targets.filter((t) => t.id.startsWith("ours/")).map((t) => ({ ...t, id: t.id + suffix }));
}

/** The native bench server over Streamable HTTP: the baseline, and the remote upstream. */
export function startNative(): Promise<Running & { url?: URL }> {
  const command = [Deno.execPath(), "run", "--no-prompt", "--allow-net=127.0.0.1"];
  let url: URL | undefined;
  return startHttp(
    [...command, BENCH_SERVER, "--http", "0"],
    /^listening (\S+)/,
    (m) => (url = new URL(m[1]!)),
    "http",
  ).then((running) => ({ ...running, url }));
}
