// The process table, read with `ps` (reading /proc needs more than the test task grants): what a
// fault left behind. Fixture children carry a unique marker argument, so a test finds exactly
// its own processes, alive, orphaned or zombie, wherever they were reparented.

import { fixturePath, MAIN } from "./cli.ts";
import { waitFor } from "./wait.ts";

/** One row of the process table. */
export interface Proc {
  pid: number;
  ppid: number;
  /** ps's STAT: "Z..." is a zombie (exited, not yet reaped by its parent). */
  stat: string;
  /** Resident set size in KiB. */
  rssKb: number;
  args: string;
}

/** Every process, now. */
export async function processTable(): Promise<Proc[]> {
  const { stdout } = await new Deno.Command("ps", {
    args: ["-eo", "pid=,ppid=,stat=,rss=,args="],
    stdin: "null",
    stderr: "null",
  }).output();
  const rows: Proc[] = [];
  for (const line of new TextDecoder().decode(stdout).split("\n")) {
    const match = /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(\d+)\s?(.*)$/.exec(line);
    if (!match) continue;
    rows.push({
      pid: Number(match[1]),
      ppid: Number(match[2]),
      stat: match[3]!,
      rssKb: Number(match[4]),
      args: match[5]!,
    });
  }
  return rows;
}

/** A marker no other process carries: pass it to fixture children, then look for it. */
export function uniqueMarker(label: string): string {
  return `mcp-proxy-fault-${label}-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * Processes whose command line carries `marker` (alive or zombie), but for the proxy itself
 * (whose command line holds its child's).
 */
export async function marked(marker: string): Promise<Proc[]> {
  return (await processTable()).filter((proc) => isMarked(proc, marker));
}

function isMarked(proc: Proc, marker: string): boolean {
  return proc.args.includes(marker) && !proc.args.includes(MAIN);
}

/** Processes whose parent is `pid`. */
export async function childrenOf(pid: number): Promise<Proc[]> {
  return (await processTable()).filter((proc) => proc.ppid === pid);
}

/** Resident set size of `pid` in MiB (0 once it is gone). */
export async function rssMb(pid: number): Promise<number> {
  const proc = (await processTable()).find((p) => p.pid === pid);
  return proc ? proc.rssKb / 1024 : 0;
}

/** Samples `pid`'s RSS until stopped; `peakMb` is the largest seen (for memory bounds). */
export function sampleRss(pid: number, everyMs = 100): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      peak = Math.max(peak, await rssMb(pid));
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return Math.max(peak, await rssMb(pid));
    },
  };
}

function describe(procs: readonly Proc[]): string {
  return procs.map((p) => `${p.pid} (parent ${p.ppid}, ${p.stat}): ${p.args}`).join("\n");
}

/**
 * Waits until no process carries `marker` (none alive, none orphaned to init, none a zombie) and,
 * with `parent`, until that process has no zombie children; fails listing what is left.
 */
export async function assertNothingLeft(
  marker: string,
  options: { parent?: number; timeoutMs?: number } = {},
): Promise<void> {
  let left: Proc[] = [];
  try {
    await waitFor(async () => {
      const table = await processTable();
      left = table.filter((proc) =>
        isMarked(proc, marker) ||
        (options.parent !== undefined && proc.ppid === options.parent && proc.stat.startsWith("Z"))
      );
      return left.length === 0;
    }, options.timeoutMs ?? 10_000);
  } catch {
    throw new Error(`processes left behind:\n${describe(left)}`);
  }
}

/**
 * Waits until none of `pids` is in the process table (neither alive nor a zombie), then checks
 * that `parent` has no zombie children.
 */
export async function assertGone(
  pids: readonly number[],
  parent: number,
  timeoutMs = 10_000,
): Promise<void> {
  let left: Proc[] = [];
  try {
    await waitFor(async () => {
      left = (await processTable()).filter((proc) => pids.includes(proc.pid));
      return left.length === 0;
    }, timeoutMs);
  } catch {
    throw new Error(`still in the process table:\n${describe(left)}`);
  }
  await assertNoZombies(parent);
}

/** No zombie among `parent`'s children right now. */
export async function assertNoZombies(parent: number): Promise<void> {
  const zombies = (await childrenOf(parent)).filter((proc) => proc.stat.startsWith("Z"));
  if (zombies.length > 0) throw new Error(`zombie children of ${parent}:\n${describe(zombies)}`);
}

/**
 * Command line of the hostile stdio fixture, tagged with `marker`. `onceDir` lets it misbehave at
 * start only in the first `--times` processes (it claims files there, so it may read and write it).
 */
export function hostileCommand(
  marker: string,
  flags: readonly string[] = [],
  options: { onceDir?: string } = {},
): string[] {
  const dir = options.onceDir;
  return [
    Deno.execPath(),
    "run",
    "--no-prompt",
    "--quiet",
    ...(dir ? [`--allow-read=${dir}`, `--allow-write=${dir}`] : []),
    fixturePath("hostile_stdio.ts"),
    "--marker",
    marker,
    ...(dir ? ["--once", dir] : []),
    ...flags,
  ];
}

/**
 * The hostile fixture under a POSIX shell that outlives it: once the fixture exits, the shell
 * closes its stdout (the pipe's last writer) and stays alive, as a wrapper script whose server
 * died may. (Deno cannot close its own fd 1.) The shell's command line carries the marker too.
 */
export function stdoutClosingCommand(marker: string): string[] {
  const [deno, ...args] = hostileCommand(marker);
  const script = '"$0" "$@"; exec 1>&-; echo "wrapper: stdout closed, staying alive" >&2; ' +
    "while :; do sleep 1; done";
  return ["sh", "-c", script, deno!, ...args];
}

/** A temp directory, removed when disposed. */
export async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "mcp-proxy-faults-" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}),
  };
}
