// The benchmark cannot silently rot: `deno task bench --quick`, run exactly as the task in
// deno.json says, prints a table row for every mode and writes JSON with every figure.

import assert from "node:assert/strict";
import { ROOT } from "./support/cli.ts";
import { type Metric, METRICS } from "../scripts/bench_phases.ts";
import { TESTED_PEERS } from "../scripts/bench_peers.ts";

const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));

/** The bench task's command line, with this Deno in place of `deno`. */
function benchCommand(): string[] {
  const task: string = config.tasks.bench;
  const [deno, ...args] = task.split(/\s+/);
  assert.equal(deno, "deno");
  assert.ok(!args.includes("-A") && !args.includes("--allow-all"), task);
  return [Deno.execPath(), ...args];
}

/** Rows of `ours` expected in the table: direction and implementation. */
const ROWS = [
  ["baseline", "native (no proxy)"],
  ["stdio, no proxy", "bench server over stdio"],
  ["HTTP hop, no MCP", "Deno.serve + fetch, bodies passed through"],
  ["stdio hop, no MCP", "stdin lines POSTed, answers to stdout"],
  ["serve /mcp", "mcp-proxy (ours)"],
  ["serve /sse", "mcp-proxy (ours)"],
  ["serve <url>", "mcp-proxy (ours)"],
  ["connect", "mcp-proxy (ours)"],
];

/** Runs the bench task's command line with `options` added, from the project's root. */
function runBench(...options: string[]): Promise<Deno.CommandOutput> {
  return runBenchIn(ROOT, ...options);
}

/** Runs the bench task's command line with `options` added, from `cwd`. */
function runBenchIn(cwd: string, ...options: string[]): Promise<Deno.CommandOutput> {
  const [exe, ...args] = benchCommand();
  return new Deno.Command(exe!, {
    args: [...args, ...options],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
}

/** Runs `deno task bench --quick` with `options`: its markdown and its JSON report. */
function quickBench(...options: string[]) {
  return quickBenchIn(ROOT, ...options);
}

/** `deno task bench --quick` with `options`, run from `cwd`: its output and its JSON report. */
async function quickBenchIn(cwd: string, ...options: string[]) {
  // The task may write only under .bench/.
  await Deno.mkdir(`${cwd}.bench`, { recursive: true });
  const json = `${cwd}.bench/test-${crypto.randomUUID()}.json`;
  try {
    const output = await runBenchIn(cwd, "--quick", ...options, "--json", json);
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    const stdout = new TextDecoder().decode(output.stdout);
    return { stdout, stderr, report: JSON.parse(await Deno.readTextFile(json)) };
  } finally {
    await Deno.remove(json).catch(() => {});
  }
}

/** The timings every target has (the figures before the sessions'), but `except`: measured. */
function assertTimed(
  target: { id: string; median: Record<string, number | null>; notes: Record<string, string> },
  except: Metric[] = [],
): void {
  for (const metric of METRICS.slice(0, METRICS.indexOf("sessionsMs"))) {
    if (except.includes(metric)) continue;
    assert.ok(target.median[metric]! > 0, `${target.id} ${metric}: ${target.notes[metric]}`);
  }
}

/**
 * The `connect` rows of a run of ours/connect next to a variant of it (two tables, two rows each):
 * the variant's, labelled with `label`, failed, and only those.
 */
function assertOnlyFailed(stdout: string, label: string): void {
  const rows = stdout.split("\n").filter((line) => line.startsWith("| `connect` |"));
  assert.equal(rows.length, 4, stdout);
  for (const row of rows) assert.equal(row.includes("failed"), row.includes(label), row);
}

Deno.test("bench: --quick measures every mode and writes the JSON", async () => {
  const { stdout, report } = await quickBench();
  for (const [direction, implementation] of ROWS) {
    const shown = /^(serve|connect)/.test(direction!) ? `\`${direction}\`` : direction;
    const rows = stdout.split("\n").filter((line) =>
      line.startsWith(`| ${shown} | ${implementation} |`)
    );
    assert.equal(rows.length, 2, `two table rows for ${direction}:\n${stdout}`);
    for (const row of rows) assert.doesNotMatch(row, /failed/, row);
  }
  assert.match(stdout, /\| cold start \| echo p50 \| echo p99 \| calls\/s c=1 \|/);
  assert.match(stdout, /\| 1 MiB result \| 1 MiB request \| \d+ sessions \| CPU per call \|/);

  assert.equal(typeof report.machine.cores, "number");
  assert.equal(typeof report.machine.deno, "string");
  // What writing memory costs: never touched before, and touched already (cheaper).
  const { freshMemoryMsPerMiB: fresh, reusedMemoryMsPerMiB: reused } = report.machine;
  assert.ok(reused > 0 && fresh > reused, `fresh ${fresh}, reused ${reused} ms per MiB`);
  assert.match(stdout, /; writing fresh memory \d+\.\d\d ms per MiB, memory in use \d+\.\d{3}; /);
  assert.equal(report.options.rounds, 1);
  assert.equal(report.options.framing, "lines");
  assert.equal(report.options.client, "deno");
  assert.equal(report.clientRuntime, `Deno ${Deno.version.deno}`);
  const ids = report.targets.map((t: { id: string }) => t.id);
  assert.deepEqual(ids, [
    "native",
    "native-stdio",
    "http-hop",
    "stdio-hop",
    "ours/serve-mcp",
    "ours/serve-mcp-prewarm",
    "ours/serve-mcp-stateless",
    "ours/serve-sse",
    "ours/serve-url",
    "ours/connect",
  ]);
  for (const target of report.targets) {
    assert.deepEqual(Object.keys(target.median), [...METRICS], target.id);
    assert.equal(target.rounds.length, 1);
    assertTimed(target);
    const multiSession = !["native-stdio", "stdio-hop", "ours/connect"].includes(target.id);
    assert.equal(target.median.sessionsMs !== null, multiSession, target.id);
    if (Deno.build.os === "linux") {
      assert.equal(target.median.sessionsPeakRssMb !== null, multiSession, target.id);
    }
    if (target.id !== "native") assert.ok(target.ratio.echoP50Ms > 0, target.id);
    if (Deno.build.os !== "linux") continue;
    assert.ok(target.median.cpuPerCallMs >= 0, target.id);
    assert.ok(target.median.proxyPeakRssMb > 0, target.id);
    if (multiSession) {
      assert.ok(target.median.sessionsPeakRssMb <= target.median.proxyPeakRssMb, target.id);
    }
    // Sampled: what the process holds of its own, not the runtime's mapped executable.
    assert.ok(target.median.proxyPrivateRssMb > 0, target.id);
    assert.ok(target.median.proxyPrivateRssMb < target.median.proxyPeakRssMb, target.id);
    assert.ok(target.median.treePeakRssMb >= target.median.proxyPeakRssMb, target.id);
    const spawns = !["ours/serve-url", "ours/serve-mcp-stateless"].includes(target.id);
    if (target.id.startsWith("ours/serve-") && spawns) {
      assert.equal(target.median.childrenAfterClose, 0, target.id);
    }
  }
});

Deno.test("bench: --sdk-stdio measures over the SDK's stdio transports", async () => {
  const { report } = await quickBench("--sdk-stdio", "--only", "native-stdio");
  assert.equal(report.options.framing, "sdk");
  const stdio = report.targets.find((t: { id: string }) => t.id === "native-stdio");
  assert.equal(stdio.implementation, "bench server over stdio, SDK transports");
  for (const metric of ["echoP50Ms", "result1MiBMs", "request1MiBMs"]) {
    assert.ok(stdio.median[metric] > 0, `${metric}: ${stdio.notes[metric]}`);
  }
});

Deno.test("bench: --client node runs the SDK client in a Node process under its permission model", async () => {
  const { stdout, report } = await quickBench(
    "--client",
    "node",
    "--only",
    "stdio,serve-url,connect",
  );
  assert.equal(report.options.client, "node");
  // Said by the client itself: it ran under Node, and Node refused it any write.
  assert.match(report.clientRuntime, /^Node v\d+\.\d+\.\d+ \(permission model: no writes\)$/);
  assert.match(stdout, /; client under Node v\d+/);
  const ids = report.targets.map((t: { id: string }) => t.id);
  assert.deepEqual(ids, ["native", "native-stdio", "stdio-hop", "ours/serve-url", "ours/connect"]);
  for (const target of report.targets) {
    assertTimed(target);
    // The stdio targets' processes were spawned by the Node client, which told the bench their
    // pids: their CPU and memory are measured all the same.
    if (Deno.build.os === "linux") assert.ok(target.median.proxyPeakRssMb > 0, target.id);
  }
  assert.ok(
    report.targets.find((t: { id: string }) => t.id === "ours/serve-url").median.sessionsMs > 0,
  );
});

Deno.test("bench: --v8-flags runs our proxy a second time under those flags, in every round", async () => {
  const measured = await quickBench("--only", "ours/connect", "--v8-flags=--max-semi-space-size=1");
  const ids = measured.report.targets.map((t: { id: string }) => t.id);
  assert.deepEqual(ids, ["native", "ours/connect", "ours/connect+v8"]);
  const variant = measured.report.targets.find((t: { id: string }) => t.id === "ours/connect+v8");
  assert.equal(variant.implementation, "mcp-proxy (ours, V8 --max-semi-space-size=1)");
  for (const target of measured.report.targets) {
    assertTimed(target);
  }

  // The flags reach that process and only that one: a flag V8 refuses stops it from starting.
  const refused = await quickBench("--only", "ours/connect", "--v8-flags=--no-such-v8-flag");
  assertOnlyFailed(refused.stdout, "V8 --no-such-v8-flag");
});

/** Runs `git` in `dir`; its output, or a failed assertion with its stderr. */
async function git(dir: string, ...args: string[]): Promise<string> {
  const output = await new Deno.Command("git", {
    // Whatever the user's git configuration: no signing, no hooks.
    args: [
      "-C",
      dir,
      ...["-c", "user.name=bench", "-c", "user.email=bench@127.0.0.1"],
      ...["-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null"],
      ...args,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, `git ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`);
  return new TextDecoder().decode(output.stdout).trim();
}

Deno.test("bench: --against <rev> runs our proxy as of that git revision too, in every round", async () => {
  // A repository of its own, so that neither this checkout's history nor its state matters: the
  // project's files committed as they are, then a revision whose proxy cannot start. The working
  // tree stays the good one.
  const repo = await Deno.makeTempDir({ prefix: "bench-against-" });
  try {
    const files = ["main.ts", "deno.json", "deno.lock", "src", "scripts", "tests"];
    const copy = await new Deno.Command("cp", {
      args: ["-R", ...files.map((file) => `${ROOT}${file}`), repo],
      stderr: "piped",
    }).output();
    assert.equal(copy.code, 0, new TextDecoder().decode(copy.stderr));
    await git(repo, "init", "-q");
    await git(repo, "add", ".");
    await git(repo, "commit", "-q", "-m", "good");
    const good = await git(repo, "rev-parse", "--short", "HEAD");
    const main = await Deno.readTextFile(`${repo}/main.ts`);
    await Deno.writeTextFile(`${repo}/main.ts`, 'throw new Error("this revision cannot start");\n');
    await git(repo, "commit", "-q", "-a", "-m", "broken");
    const broken = await git(repo, "rev-parse", "--short", "HEAD");
    await Deno.writeTextFile(`${repo}/main.ts`, main);

    const run = (...options: string[]) =>
      quickBenchIn(`${repo}/`, "--only", "ours/connect", ...options);

    const measured = await run("--against", "HEAD~1");
    assert.match(
      measured.stderr,
      new RegExp(`--against HEAD~1: ${good} in ${repo}/\\.bench/against/${good}\n`),
    );
    const ids = measured.report.targets.map((t: { id: string }) => t.id);
    assert.deepEqual(ids, ["native", "ours/connect", `ours/connect@${good}`]);
    const variant = measured.report.targets.find((t: { id: string }) => t.id.includes("@"));
    assert.equal(variant.implementation, `mcp-proxy (ours at ${good})`);
    for (const target of measured.report.targets) {
      assertTimed(target);
    }
    // Extracted from git, not copied from the working tree.
    assert.equal(await Deno.readTextFile(`${repo}/.bench/against/${good}/main.ts`), main);

    // The revision's code is what runs: the broken one fails its rows, and only those.
    const refused = await run("--against", broken);
    assertOnlyFailed(refused.stdout, `ours at ${broken}`);

    const unknown = await runBenchIn(repo, "--against", "no-such-rev");
    assert.equal(unknown.code, 2);
    assert.equal(
      new TextDecoder().decode(unknown.stderr).trim().split("\n").at(-1),
      `bench: --against: "no-such-rev" is not a git revision of ${repo}/`,
    );
  } finally {
    await Deno.remove(repo, { recursive: true });
  }
});

Deno.test("bench: --peers measures the npm peers, interleaved with the baseline round by round", async () => {
  // Installed as the README says, at the versions its tables show, under .bench/ (the one folder
  // the task may write); npm's cache makes a second install quick.
  const dir = ".bench/test-peers";
  const install = await new Deno.Command("npm", {
    args: [
      "install",
      "--prefix",
      `${ROOT}${dir}`,
      "--no-audit",
      "--no-fund",
      "--prefer-offline",
      ...Object.entries(TESTED_PEERS).map(([name, version]) => `${name}@${version}`),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(install.code, 0, `npm install: ${new TextDecoder().decode(install.stderr)}`);

  const { stdout, report } = await quickBench(
    "--peers",
    "--peers-dir",
    dir,
    "--only",
    "supergateway,mcp-proxy/,mcp-remote",
  );
  assert.deepEqual(report.skippedPeers, []);
  const ids = report.targets.map((t: { id: string }) => t.id);
  const peerIds = [
    "supergateway/serve-mcp",
    "supergateway/serve-sse",
    "supergateway/connect",
    "mcp-proxy/serve-mcp",
    "mcp-proxy/serve-sse",
    "mcp-remote/connect",
  ];
  assert.deepEqual(ids, ["native", ...peerIds]);
  for (const target of report.targets) {
    const name = target.id.split("/")[0];
    if (name !== "native") {
      assert.ok(target.implementation.startsWith(`${name} ${TESTED_PEERS[name]}`), target.id);
      const shown = stdout.split("\n").filter((line) =>
        line.startsWith(`| \`${target.direction}\` | ${target.implementation} |`)
      );
      assert.equal(shown.length, 2, `two table rows for ${target.id}:\n${stdout}`);
    }
    if (target.id === "supergateway/serve-mcp") {
      // supergateway's Streamable HTTP server takes at most 100 KB (Express's default limit).
      assert.match(target.notes.request1MiBMs, /^refused \(body limit\)/);
      assertTimed(target, ["request1MiBMs"]);
    } else assertTimed(target);
    if (Deno.build.os === "linux" && target.id !== "native") {
      // Read from /proc in clock ticks: measured, though a quick run's few calls may take none.
      assert.equal(typeof target.median.cpuPerCallMs, "number", target.id);
      assert.ok(target.median.cpuPerCallMs >= 0, target.id);
      assert.ok(target.median.proxyPeakRssMb > 0, target.id);
    }
  }

  // Rounds alternate: each round measures the baseline and then every target, so that a drift of
  // the machine weighs on all of them alike.
  const two = await quickBench(
    "--rounds",
    "2",
    "--peers",
    "--peers-dir",
    dir,
    "--only",
    "mcp-remote",
  );
  assert.deepEqual(
    [...two.stderr.matchAll(/^\[bench\] round (\d\/\d) (\S+):/gm)].map((m) => `${m[1]} ${m[2]}`),
    ["1/2 native", "1/2 mcp-remote/connect", "2/2 native", "2/2 mcp-remote/connect"],
  );

  // A peer that is not installed is named, with the command that installs it.
  const none = await quickBench(
    "--peers",
    "--peers-dir",
    ".bench/test-no-peers",
    "--only",
    "native",
  );
  assert.deepEqual(
    none.report.skippedPeers,
    Object.keys(TESTED_PEERS).map((name) => ({
      name,
      reason: `not installed: npm i --prefix ${ROOT}.bench/test-no-peers ${name}`,
    })),
  );
});

Deno.test("bench: an unknown --client is a usage error", async () => {
  const output = await runBench("--client", "bun");
  assert.equal(output.code, 2);
  assert.equal(
    new TextDecoder().decode(output.stderr).trim().split("\n").at(-1),
    'bench: --client must be deno or node (got "bun")',
  );
});
