// One measured run of one target for scripts/bench.ts: cold start, sequential echo latency, CPU
// per call, throughput at several concurrencies, many concurrent sessions (and the proxy's peak RSS
// by then), 1 MiB each way, peak RSS over the run (the proxy's VmHWM, its sampled private RSS and
// its sampled process tree) and children left after sessions close.

import { type ClientSide, firstLine } from "../tests/fixtures/bench_client.ts";
import { cpuMs, descendants, peakRssMb, TreeSampler } from "./bench_proc.ts";
import type { Running, Target } from "./bench_targets.ts";

/** Every figure, in table order; `null` when it failed or does not apply (see notes). */
export const METRICS = [
  "coldStartMs",
  "echoP50Ms",
  "echoP99Ms",
  "callsPerSecC1",
  "callsPerSecC16",
  "callsPerSecC64",
  "result1MiBMs",
  "request1MiBMs",
  "sessionsMs",
  "cpuPerCallMs",
  "sessionsPeakRssMb",
  "proxyPeakRssMb",
  "proxyPrivateRssMb",
  "treePeakRssMb",
  "childrenAfterClose",
] as const;
export type Metric = typeof METRICS[number];
export type Figures = Record<Metric, number | null>;

export interface Counts {
  warmup: number;
  echo: number;
  /** Calls per throughput level, by concurrency. */
  throughput: { 1: number; 16: number; 64: number };
  /** Repetitions of each 1 MiB call (the median counts). */
  large: number;
  sessions: number;
  sessionCalls: number;
}

export interface RunResult {
  figures: Figures;
  /** Why a figure is null: "n/a" or the error. */
  notes: Partial<Record<Metric, string>>;
  wallMs: number;
  /** For finding where the cost is: the proxy's CPU ms spent in each phase, and its VmHWM
   * (MB) at the end of each phase. */
  phases: Record<string, { cpuMs?: number; peakRssMb?: number }>;
}

const CHILDREN_SETTLE_MS = 3_000;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)]!;
}

function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 0.5);
}

function describe(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const line = firstLine(error);
  return /\b413\b|too large/i.test(text) ? `refused (body limit): ${line}` : line;
}

/**
 * Runs every phase against `target`, with `client`'s sessions and timed loops; a failed phase
 * leaves its figures null with a note.
 */
export async function measureTarget(
  target: Target,
  counts: Counts,
  remoteUrl: string | undefined,
  client: ClientSide,
): Promise<RunResult> {
  const started = performance.now();
  const figures = Object.fromEntries(METRICS.map((m) => [m, null])) as Figures;
  const notes: Partial<Record<Metric, string>> = {};
  const fail = (metrics: Metric[], error: unknown) => {
    for (const metric of metrics) notes[metric] = describe(error);
  };
  const phases: RunResult["phases"] = {};
  let lastCpu: number | undefined;
  /** The proxy's process, once its first session is open. */
  let pid: number | undefined;
  /** Notes the proxy's CPU time since the previous phase ended, and its peak RSS so far. */
  const phaseEnd = async (name: string) => {
    const id = pid;
    if (id === undefined) return;
    const [cpu, rss] = await Promise.all([cpuMs(id), peakRssMb(id)]);
    phases[name] = {
      ...(cpu !== undefined ? { cpuMs: cpu - (lastCpu ?? 0) } : {}),
      ...(rss !== undefined ? { peakRssMb: rss } : {}),
    };
    lastCpu = cpu;
  };

  // Cold start: spawn to the first successful initialize + tools/list.
  let running: Running;
  let main: number;
  try {
    running = await target.start(remoteUrl);
    let opened: { session: number; pid?: number } | undefined;
    try {
      opened = await client.open(running.endpoint);
      main = opened.session;
      pid = running.pid() ?? opened.pid;
      const tools = await client.tools(main);
      if (!tools.includes("echo")) throw new Error("no echo tool listed");
    } catch (error) {
      const output = running.output();
      // A stdio target's process goes with its session.
      if (opened) await client.close(opened.session).catch(() => {});
      await running.stop();
      throw new Error(`${describe(error)}${output ? `\n${output}` : ""}`);
    }
    figures.coldStartMs = performance.now() - started;
  } catch (error) {
    fail([...METRICS], error);
    return { figures, notes, wallMs: performance.now() - started, phases };
  }
  const sampler = pid === undefined ? undefined : new TreeSampler(pid);
  await phaseEnd("coldStart");

  try {
    await client.echoTimes(main, counts.warmup);
    await phaseEnd("warmup");
    const before = lastCpu;
    const times = await client.echoTimes(main, counts.echo);
    await phaseEnd("echo");
    const after = lastCpu;
    times.sort((a, b) => a - b);
    figures.echoP50Ms = percentile(times, 0.5);
    figures.echoP99Ms = percentile(times, 0.99);
    if (before !== undefined && after !== undefined) {
      figures.cpuPerCallMs = (after - before) / counts.echo;
    } else notes.cpuPerCallMs = "n/a";
  } catch (error) {
    fail(["echoP50Ms", "echoP99Ms", "cpuPerCallMs"], error);
  }

  sampler?.start();
  for (const concurrency of [1, 16, 64] as const) {
    const metric = `callsPerSecC${concurrency}` as const;
    try {
      figures[metric] = await client.throughput(main, concurrency, counts.throughput[concurrency]);
    } catch (error) {
      fail([metric], error);
    }
    await phaseEnd(`throughputC${concurrency}`);
  }

  // Before the 1 MiB phases: the proxy's RSS while it serves many sessions, after the small
  // calls, not what large messages left behind (the peak over the whole run is separate).
  if (target.multiSession) {
    try {
      figures.sessionsMs = await client.sessions(
        running.endpoint,
        counts.sessions,
        counts.sessionCalls,
      );
    } catch (error) {
      fail(["sessionsMs"], error);
    }
    await phaseEnd("sessions");
    figures.sessionsPeakRssMb = phases.sessions?.peakRssMb ?? null;
    if (figures.sessionsPeakRssMb === null) notes.sessionsPeakRssMb = "n/a";
  } else {
    notes.sessionsMs = "n/a";
    notes.sessionsPeakRssMb = "n/a";
  }

  try {
    figures.result1MiBMs = median(await client.large(main, "result", counts.large));
  } catch (error) {
    fail(["result1MiBMs"], error);
  }
  await phaseEnd("result1MiB");
  try {
    figures.request1MiBMs = median(await client.large(main, "request", counts.large));
  } catch (error) {
    fail(["request1MiBMs"], error);
  }
  await phaseEnd("request1MiB");

  await sampler?.sample();
  sampler?.pause();
  figures.proxyPeakRssMb = pid === undefined ? null : await peakRssMb(pid) ?? null;
  if (figures.proxyPeakRssMb === null) notes.proxyPeakRssMb = "n/a";
  figures.proxyPrivateRssMb = sampler?.privatePeakMb ?? null;
  if (figures.proxyPrivateRssMb === null) notes.proxyPrivateRssMb = "n/a";
  const tree = sampler?.peakMb;
  figures.treePeakRssMb = tree === undefined ? null : Math.max(tree, figures.proxyPeakRssMb ?? 0);
  if (figures.treePeakRssMb === null) notes.treePeakRssMb = "n/a";

  await client.close(main);
  if (target.spawnsChildren && pid !== undefined) {
    const left = await settledChildren(pid, target.spares ?? 0);
    figures.childrenAfterClose = left === null ? null : left - (target.spares ?? 0);
    if (figures.childrenAfterClose === null) notes.childrenAfterClose = "n/a";
  } else notes.childrenAfterClose = "n/a";
  await running.stop();
  return { figures, notes, wallMs: performance.now() - started, phases };
}

/** Descendants of `pid` once they stop going away (at most CHILDREN_SETTLE_MS after closing). */
async function settledChildren(pid: number, spares: number): Promise<number | null> {
  const deadline = performance.now() + CHILDREN_SETTLE_MS;
  for (;;) {
    const count = await descendants(pid);
    if (count === undefined) return null;
    if (count <= spares || performance.now() > deadline) return count;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
