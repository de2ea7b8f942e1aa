// Figures the fault suite reports to `deno task faults` (scripts/faults.ts): each test adds what
// it did (faults injected, inputs fuzzed, sessions held, requests lost, peak memory) as one JSON
// line to the file named by MCP_PROXY_FAULTS_REPORT. Without that variable, nothing is written.

export interface FaultFigures {
  /** What the figures are about, e.g. "500 sessions against --max-sessions 400". */
  case: string;
  faults?: number;
  inputs?: number;
  sessions?: number;
  requests?: number;
  /** Requests that got neither an answer nor an error: must be 0. */
  lost?: number;
  /** Peak resident memory of the proxy process, MB. */
  peakRssMb?: number;
}

export async function report(figures: FaultFigures): Promise<void> {
  const path = Deno.env.get("MCP_PROXY_FAULTS_REPORT");
  if (!path) return;
  await Deno.writeTextFile(path, JSON.stringify(figures) + "\n", { append: true });
}

/** Peak resident memory of `pid` so far, MB (Linux's VmHWM; elsewhere ps's current RSS). */
export async function rssMb(pid: number): Promise<number | undefined> {
  const linux = Deno.build.os === "linux";
  const { stdout } = linux
    ? await new Deno.Command("cat", { args: [`/proc/${pid}/status`] }).output()
    : await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(pid)] }).output();
  const text = new TextDecoder().decode(stdout);
  const kb = Number(linux ? text.match(/^VmHWM:\s+(\d+) kB/m)?.[1] : text.trim());
  return Number.isFinite(kb) && kb > 0 ? Math.round(kb / 1024) : undefined;
}
