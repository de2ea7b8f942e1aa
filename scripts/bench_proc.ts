// Process figures for scripts/bench.ts on Linux: CPU time, peak RSS, the process tree and the
// machine. Deno reads /proc only under --allow-all, so every read goes through `cat` or `ps`
// (--allow-run). Elsewhere each function answers undefined and the table says "n/a".

const LINUX = Deno.build.os === "linux";
const decoder = new TextDecoder();

/** Runs a small command to completion; its stdout, or undefined when it fails. */
export async function commandText(command: string, args: string[]): Promise<string | undefined> {
  try {
    const output = await new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    return output.success ? decoder.decode(output.stdout) : undefined;
  } catch {
    return undefined;
  }
}

let clockTicks: Promise<number> | undefined;

/** Clock ticks per second (the unit of /proc/<pid>/stat times). */
function ticksPerSecond(): Promise<number> {
  clockTicks ??= commandText("getconf", ["CLK_TCK"]).then((text) => Number(text?.trim()) || 100);
  return clockTicks;
}

let pageSize: Promise<number> | undefined;

/** The memory page size in bytes (the unit of page faults). */
export function pageBytes(): Promise<number> {
  pageSize ??= commandText("getconf", ["PAGESIZE"]).then((text) => Number(text?.trim()) || 4096);
  return pageSize;
}

/**
 * The fields of /proc/<pid>/stat after the command name (which may hold spaces), so that field 3
 * (state) is the first.
 */
async function statFields(pid: number): Promise<string[] | undefined> {
  if (!LINUX) return undefined;
  const stat = await commandText("cat", [`/proc/${pid}/stat`]);
  return stat === undefined ? undefined : stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** User + system CPU time of `pid` so far, in ms. */
export async function cpuMs(pid: number): Promise<number | undefined> {
  const fields = await statFields(pid);
  // utime and stime are fields 14 and 15.
  const ticks = Number(fields?.[11]) + Number(fields?.[12]);
  return Number.isFinite(ticks) ? ticks * 1000 / await ticksPerSecond() : undefined;
}

/** Minor page faults of `pid` so far (field 10, minflt): pages it touched for the first time. */
export async function minorFaults(pid: number): Promise<number | undefined> {
  const faults = Number((await statFields(pid))?.[7]);
  return Number.isFinite(faults) ? faults : undefined;
}

/** Peak resident set size of `pid` over its life (VmHWM), in MB. */
export async function peakRssMb(pid: number): Promise<number | undefined> {
  if (!LINUX) return undefined;
  const status = await commandText("cat", [`/proc/${pid}/status`]);
  const match = status === undefined ? null : /^VmHWM:\s+(\d+) kB/m.exec(status);
  return match ? Number(match[1]) / 1024 : undefined;
}

interface ProcessRow {
  pid: number;
  ppid: number;
  rssKb: number;
}

async function processTable(): Promise<ProcessRow[] | undefined> {
  if (!LINUX) return undefined;
  const text = await commandText("ps", ["-e", "-o", "pid=,ppid=,rss="]);
  if (text === undefined) return undefined;
  return text.trim().split("\n").map((line) => {
    const [pid, ppid, rss] = line.trim().split(/\s+/).map(Number);
    return { pid: pid!, ppid: ppid!, rssKb: rss! };
  });
}

/** `pid` and all its descendants. */
function treeOf(rows: ProcessRow[], pid: number): ProcessRow[] {
  const tree = rows.filter((row) => row.pid === pid);
  for (let i = 0; i < tree.length; i++) {
    for (const row of rows) if (row.ppid === tree[i]!.pid) tree.push(row);
  }
  return tree;
}

/** How many descendants `pid` has now (children, grandchildren...). */
export async function descendants(pid: number): Promise<number | undefined> {
  const rows = await processTable();
  return rows === undefined ? undefined : Math.max(0, treeOf(rows, pid).length - 1);
}

/**
 * Resident memory of `pid` that is its own (RssAnon: heap, stacks, buffers), in kB: RSS less the
 * pages of files it maps (the runtime's executable, shared with every process running it, and
 * given back by the kernel under pressure).
 */
async function privateRssKb(pid: number): Promise<number | undefined> {
  const status = await commandText("cat", [`/proc/${pid}/status`]);
  const match = status === undefined ? null : /^RssAnon:\s+(\d+) kB/m.exec(status);
  return match ? Number(match[1]) : undefined;
}

/**
 * Samples the RSS sum of `pid`'s process tree, and the private RSS of `pid` itself, every
 * `everyMs` until stopped; keeps the peaks.
 */
export class TreeSampler {
  #timer: ReturnType<typeof setInterval> | undefined;
  #busy = false;
  #peakKb = 0;
  #sampled = false;
  #privatePeakKb: number | undefined;

  constructor(private readonly pid: number, private readonly everyMs = 200) {}

  start(): void {
    if (!LINUX || this.#timer !== undefined) return;
    void this.sample();
    this.#timer = setInterval(() => void this.sample(), this.everyMs);
  }

  /** Takes one sample now (also while stopped). */
  async sample(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      const [rows, own] = await Promise.all([processTable(), privateRssKb(this.pid)]);
      if (own !== undefined) this.#privatePeakKb = Math.max(this.#privatePeakKb ?? 0, own);
      if (rows === undefined) return;
      const kb = treeOf(rows, this.pid).reduce((sum, row) => sum + row.rssKb, 0);
      this.#peakKb = Math.max(this.#peakKb, kb);
      this.#sampled = true;
    } finally {
      this.#busy = false;
    }
  }

  pause(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** The highest sum seen, in MB. */
  get peakMb(): number | undefined {
    return this.#sampled ? this.#peakKb / 1024 : undefined;
  }

  /** The highest private RSS of the process itself seen, in MB. */
  get privatePeakMb(): number | undefined {
    return this.#privatePeakKb === undefined ? undefined : this.#privatePeakKb / 1024;
  }
}

/** What the README's Performance section says about the machine. */
export interface Machine {
  cores: number;
  cpu: string;
  memoryGb: number | undefined;
  os: string;
  kernel: string;
  deno: string;
  node: string | undefined;
  /** Writing memory the process has never touched, in ms per MiB (see memoryTouchCost). */
  freshMemoryMsPerMiB: number;
  /** Writing the same memory again, in ms per MiB. */
  reusedMemoryMsPerMiB: number;
}

export async function describeMachine(): Promise<Machine> {
  const cpuinfo = LINUX ? await commandText("cat", ["/proc/cpuinfo"]) : undefined;
  const meminfo = LINUX ? await commandText("cat", ["/proc/meminfo"]) : undefined;
  const release = LINUX ? await commandText("cat", ["/etc/os-release"]) : undefined;
  const memKb = meminfo === undefined ? undefined : /^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1];
  return {
    cores: navigator.hardwareConcurrency,
    cpu: cpuinfo === undefined ? "unknown" : /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? "",
    memoryGb: memKb === undefined ? undefined : Math.round(Number(memKb) / 1024 / 1024 * 10) / 10,
    os: /^PRETTY_NAME="?([^"\n]+)"?/m.exec(release ?? "")?.[1] ?? Deno.build.os,
    kernel: (await commandText("uname", ["-sr"]))?.trim() ?? Deno.build.os,
    deno: Deno.version.deno,
    node: (await commandText("node", ["--version"]))?.trim(),
    ...memoryTouchCost(),
  };
}

const MIB = 1024 * 1024;

/**
 * What memory costs the first time it is written, against once it is in use, per MiB: a large
 * message's every hop that allocates it anew pays the first (the page faults of memory the
 * kernel hands out), and on some virtual machines that is most of a 1 MiB call's time. Buffers
 * of 64 MiB, above glibc's largest threshold for mapping memory apart (32 MiB), so each comes
 * fresh from the kernel; one byte written per 4 KiB page; the best of three.
 */
export function memoryTouchCost(): { freshMemoryMsPerMiB: number; reusedMemoryMsPerMiB: number } {
  const size = 64 * MIB;
  const touch = (buffer: Uint8Array, value: number) => {
    const start = performance.now();
    for (let at = 0; at < size; at += 4096) buffer[at] = value;
    return performance.now() - start;
  };
  let fresh = Infinity;
  let buffer = new Uint8Array(0);
  for (let i = 0; i < 3; i++) {
    buffer = new Uint8Array(size);
    fresh = Math.min(fresh, touch(buffer, 1));
  }
  let reused = Infinity;
  for (let i = 0; i < 3; i++) reused = Math.min(reused, touch(buffer, i + 2));
  return { freshMemoryMsPerMiB: fresh / 64, reusedMemoryMsPerMiB: reused / 64 };
}
