// `deno task faults`: the fault, load and hostile-input suite (tests/faults/) with a longer fuzz
// run, summed up: faults injected and survived, inputs fuzzed, sessions held, requests lost (must
// be 0) and peak memory per case. Markdown on stdout; exit 1 if a case failed or lost a request.

import { parseArgs } from "node:util";
import { join } from "node:path";
import type { FaultFigures } from "../tests/support/report.ts";

const USAGE = `Usage: deno task faults [options]

Runs tests/faults/ (the same tests as deno task test runs, with more fuzzing) and prints what
they did: faults injected and survived, inputs fuzzed, sessions held, requests lost, peak memory.

Options:
  --fuzz-runs <n>   fuzzed inputs per fuzz case (default 2000; deno task test uses fewer)
  --seed <n>        the fuzzers' seed (default: a new one each run, printed)
  -h, --help        show this help
`;

const TEST_FLAGS = [
  "--no-prompt",
  "--allow-run",
  "--allow-net=127.0.0.1,localhost",
  "--allow-read",
  "--allow-write",
  "--allow-env",
];

const encoder = new TextEncoder();
function out(text: string): void {
  const bytes = encoder.encode(text + "\n");
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        "fuzz-runs": { type: "string", default: "2000" },
        seed: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (error) {
    Deno.stderr.writeSync(encoder.encode(`${(error as Error).message}\n${USAGE}`));
    return 2;
  }
  if (values.help) {
    out(USAGE);
    return 0;
  }
  const runs = values["fuzz-runs"]!;
  const seed = values.seed ?? String(Math.floor(Math.random() * 2 ** 31));
  for (const [flag, value] of [["--fuzz-runs", runs], ["--seed", seed]]) {
    if (!/^\d+$/.test(value!)) {
      Deno.stderr.writeSync(encoder.encode(`${flag} must be a whole number (got "${value}")\n`));
      return 2;
    }
  }
  const dir = await Deno.makeTempDir({ prefix: "mcp-proxy-faults-" });
  const reportPath = join(dir, "figures.jsonl");
  try {
    const started = performance.now();
    const test = await new Deno.Command(Deno.execPath(), {
      args: ["test", ...TEST_FLAGS, "tests/faults/"],
      env: {
        MCP_PROXY_FAULTS_REPORT: reportPath,
        MCP_PROXY_FUZZ_RUNS: runs,
        MCP_PROXY_FUZZ_SEED: seed,
        NO_COLOR: "1",
      },
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const text = new TextDecoder().decode(test.stdout);
    const summary = text.match(/(ok|FAILED) \| (\d+) passed(?: \((\d+) steps\))? \| (\d+) failed/);
    const figures = await readFigures(reportPath);
    const seconds = Math.round((performance.now() - started) / 100) / 10;
    out(render(figures, { seed, runs, seconds, passed: summary?.[2], failed: summary?.[4] }));
    const lost = figures.reduce((sum, f) => sum + (f.lost ?? 0), 0);
    if (!test.success || lost > 0) {
      out(text.split("\n").filter((line) => /FAILED|^error/.test(line)).join("\n"));
      return 1;
    }
    return 0;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function readFigures(path: string): Promise<FaultFigures[]> {
  try {
    return (await Deno.readTextFile(path)).split("\n").filter(Boolean).map((line) =>
      JSON.parse(line) as FaultFigures
    );
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

function render(
  figures: FaultFigures[],
  run: { seed: string; runs: string; seconds: number; passed?: string; failed?: string },
): string {
  const sum = (key: keyof FaultFigures) =>
    figures.reduce((total, f) => total + (typeof f[key] === "number" ? f[key] as number : 0), 0);
  const sessions = Math.max(0, ...figures.map((f) => f.sessions ?? 0));
  const lines = [
    `deno task faults: ${run.passed ?? "?"} cases passed, ${run.failed ?? "?"} failed, ` +
    `${run.seconds} s; fuzz seed ${run.seed}, ${run.runs} inputs per fuzz case`,
    "",
    "| faults injected and survived | inputs fuzzed | most sessions held | requests | requests lost |",
    "| --- | --- | --- | --- | --- |",
    `| ${sum("faults")} | ${sum("inputs")} | ${sessions} | ${sum("requests")} | ${sum("lost")} |`,
  ];
  const memory = figures.filter((f) => f.peakRssMb !== undefined);
  if (memory.length > 0) {
    lines.push("", "| case | proxy peak RSS |", "| --- | --- |");
    for (const f of memory) lines.push(`| ${f.case} | ${f.peakRssMb} MB |`);
  }
  return lines.join("\n");
}

if (import.meta.main) Deno.exit(await main(Deno.args));
