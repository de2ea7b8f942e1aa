// Summaries for scripts/bench.ts: medians over rounds, ratios to the same round's baseline (the
// median of per-round ratios, so drift between rounds cancels), the markdown tables and the JSON.

import { type Figures, type Metric, METRICS, type RunResult } from "./bench_phases.ts";
import type { Machine } from "./bench_proc.ts";
import type { Direction, Target } from "./bench_targets.ts";

export interface TargetSummary {
  id: string;
  implementation: string;
  direction: Direction;
  /** Median over rounds of each figure (null: failed every round, or does not apply). */
  median: Figures;
  /** Median over rounds of figure / the baseline's figure in the same round. */
  ratio: Partial<Record<Metric, number>>;
  /** Why a median is null. */
  notes: Partial<Record<Metric, string>>;
  rounds: RunResult[];
}

/** Figures compared with the baseline; the rest (CPU, RSS, children) are shown as they are. */
const RATIO_METRICS: readonly Metric[] = [
  "coldStartMs",
  "echoP50Ms",
  "echoP99Ms",
  "callsPerSecC1",
  "callsPerSecC16",
  "callsPerSecC64",
  "result1MiBMs",
  "request1MiBMs",
  "sessionsMs",
];

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Medians and ratios for every target; `baseline` holds the baseline's runs, round by round. */
export function summarize(
  target: Target,
  rounds: RunResult[],
  baseline: RunResult[],
): TargetSummary {
  const summary: TargetSummary = {
    id: target.id,
    implementation: target.implementation,
    direction: target.direction,
    median: {} as Figures,
    ratio: {},
    notes: {},
    rounds,
  };
  for (const metric of METRICS) {
    const values = rounds.map((r) => r.figures[metric]).filter((v): v is number => v !== null);
    summary.median[metric] = median(values);
    if (values.length === 0) {
      const note = rounds.map((r) => r.notes[metric]).find((n) => n !== undefined);
      summary.notes[metric] = note ?? "n/a";
    }
    if (!RATIO_METRICS.includes(metric)) continue;
    const ratios = rounds.flatMap((run, i) => {
      const base = baseline[i]?.figures[metric];
      const value = run.figures[metric];
      return base && value !== null ? [value / base] : [];
    });
    const ratio = median(ratios);
    if (ratio !== null) summary.ratio[metric] = ratio;
  }
  return summary;
}

const NUMBER = (value: number): string =>
  value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);

function cell(summary: TargetSummary, metric: Metric, unit: string): string {
  const value = summary.median[metric];
  if (value === null) {
    const note = summary.notes[metric] ?? "n/a";
    return note === "n/a" ? "\u2013" : note.startsWith("refused") ? "refused" : "failed";
  }
  const shown = metric.startsWith("callsPerSec") || metric === "childrenAfterClose"
    ? value.toFixed(0)
    : NUMBER(value);
  const ratio = summary.ratio[metric];
  const text = unit ? `${shown} ${unit}` : shown;
  return ratio === undefined || summary.direction === "baseline"
    ? text
    : `${text} (${ratio.toFixed(2)}\u00d7)`;
}

function table(
  summaries: TargetSummary[],
  columns: Array<[string, Metric, string]>,
): string {
  const header = ["direction", "implementation", ...columns.map(([title]) => title)];
  const rows = summaries.map((s) => [
    // In backticks, so that markdown shows `serve <url>` rather than taking it for a tag.
    /^(serve|connect)/.test(s.direction) ? `\`${s.direction}\`` : s.direction,
    s.implementation,
    ...columns.map(([, metric, unit]) => cell(s, metric, unit)),
  ]);
  return [header, header.map(() => "---"), ...rows].map((r) => `| ${r.join(" | ")} |`).join(
    "\n",
  );
}

/** The two markdown tables (latency and throughput; size, sessions and resources), and notes. */
export function markdown(summaries: TargetSummary[], sessions: number): string {
  const speed = table(summaries, [
    ["cold start", "coldStartMs", "ms"],
    ["echo p50", "echoP50Ms", "ms"],
    ["echo p99", "echoP99Ms", "ms"],
    ["calls/s c=1", "callsPerSecC1", ""],
    ["calls/s c=16", "callsPerSecC16", ""],
    ["calls/s c=64", "callsPerSecC64", ""],
  ]);
  const weight = table(summaries, [
    ["1 MiB result", "result1MiBMs", "ms"],
    ["1 MiB request", "request1MiBMs", "ms"],
    [`${sessions} sessions`, "sessionsMs", "ms"],
    ["CPU per call", "cpuPerCallMs", "ms"],
    [`RSS at ${sessions} sessions`, "sessionsPeakRssMb", "MB"],
    ["proxy peak RSS", "proxyPeakRssMb", "MB"],
    ["of it private", "proxyPrivateRssMb", "MB"],
    ["tree peak RSS", "treePeakRssMb", "MB"],
    ["children left", "childrenAfterClose", ""],
  ]);
  const problems = summaries.flatMap((s) =>
    Object.entries(s.notes)
      .filter(([, note]) => note !== "n/a")
      .map(([metric, note]) => `- ${s.implementation}, ${s.direction}, ${metric}: ${note}`)
  );
  return [speed, "", weight, ...(problems.length ? ["", ...problems] : [])].join("\n");
}

export interface Report {
  generatedAt: string;
  command: string;
  durationSeconds: number;
  machine: Machine;
  /** Where the benchmark's client ran, as it said itself: "Deno 2.9.6", "Node v20.20.2 ...". */
  clientRuntime: string;
  options: Record<string, unknown>;
  skippedPeers: Array<{ name: string; reason: string }>;
  targets: TargetSummary[];
}

/** One line about the machine, for the table's heading and the README. */
export function machineLine(machine: Machine): string {
  const memory = machine.memoryGb === undefined ? "" : `, ${machine.memoryGb} GB RAM`;
  const node = machine.node ? `, Node ${machine.node}` : "";
  return `${machine.cores} cores (${machine.cpu})${memory}, ${machine.os} (${machine.kernel}), ` +
    `Deno ${machine.deno}${node}; writing fresh memory ` +
    `${machine.freshMemoryMsPerMiB.toFixed(2)} ms per MiB, memory in use ` +
    `${machine.reusedMemoryMsPerMiB.toFixed(3)}`;
}
