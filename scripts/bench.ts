// `deno task bench`: how much the proxy costs, against the native bench server measured in the
// same run (tests/fixtures/bench_server.ts), in every mode: serve /mcp and /sse in front of a
// stdio server, serve <url> and connect in front of the native HTTP server. `--peers` adds the
// npm peers installed with `npm i --prefix .bench supergateway mcp-proxy mcp-remote`. Targets
// interleave within each round (A B A B); figures are medians over rounds. Markdown on stdout,
// progress on stderr, JSON to --json (default .bench/results.json). Loopback only.

import { parseArgs } from "node:util";
import { ROOT } from "../tests/support/cli.ts";
import { type ClientSide, LocalClientSide } from "../tests/fixtures/bench_client.ts";
import { type Counts, measureTarget, type RunResult } from "./bench_phases.ts";
import { commandText, describeMachine } from "./bench_proc.ts";
import { machineLine, markdown, type Report, summarize } from "./bench_report.ts";
import { NodeClientSide } from "./bench_node.ts";
import { peerTargets } from "./bench_peers.ts";
import {
  denoConnect,
  ourTargets,
  type Running,
  startNative,
  type StdioFraming,
  stdioServer,
  type Target,
  type Variant,
} from "./bench_targets.ts";

const USAGE = `Usage: deno task bench [options]

Measures mcp-proxy (serve /mcp, serve /sse, serve <url>, connect) against the native bench
server in the same run; prints markdown tables and writes JSON.

Options:
  --rounds <n>      rounds, targets interleaved in each; figures are medians (default 3)
  --quick           tiny counts and one round: a smoke run of every mode
  --peers           also measure the npm peers installed in the peers directory:
                      npm i --prefix .bench supergateway mcp-proxy mcp-remote
  --peers-dir <dir> where the peers are installed (default .bench)
  --only <ids>      comma-separated target ids or parts of them (e.g. native,serve-mcp)
  --v8-flags <list> also run our proxy under these V8 flags (e.g. --max-semi-space-size=1),
                    next to it in every round (ids end in +v8), to weigh memory against speed
  --against <rev>   also run our proxy as of this git revision (e.g. HEAD, HEAD~1), next to
                    the working tree in every round (ids end in @<rev>): a change's before and
                    after measured on the same machine state. Extracted under .bench/against/
  --client <deno|node>
                    where the benchmark's client (the SDK's Client) runs: in the bench, under
                    Deno (default), or in a Node process (the runtime of Claude Desktop, Cursor
                    and most hosts), which over stdio uses the SDK's StdioClientTransport
  --sdk-stdio       the benchmark's stdio client and server use the SDK's stdio transports
                    rather than one-pass line framing (as Node and Python programs read):
                    under Deno their reader makes each 1 MiB message cost 35 to 60 ms
  --json <file>     where to write the results (default .bench/results.json; the task
                    may write only under .bench/)
  -h, --help        show this help
`;

const FULL: Counts = {
  warmup: 100,
  echo: 2000,
  throughput: { 1: 500, 16: 2000, 64: 2000 },
  large: 20,
  sessions: 50,
  sessionCalls: 20,
};
const QUICK: Counts = {
  warmup: 3,
  echo: 20,
  throughput: { 1: 10, 16: 32, 64: 64 },
  large: 1,
  sessions: 3,
  sessionCalls: 2,
};

const encoder = new TextEncoder();
function write(stream: typeof Deno.stdout, text: string): void {
  const bytes = encoder.encode(text + "\n");
  let written = 0;
  while (written < bytes.length) written += stream.writeSync(bytes.subarray(written));
}
const say = (text: string) => write(Deno.stdout, text);
const progress = (text: string) => write(Deno.stderr, `[bench] ${text}`);

interface Options {
  rounds: number;
  quick: boolean;
  peers: boolean;
  peersDir: string;
  only: string[];
  json: string;
  v8Flags?: string;
  against?: string;
  framing: StdioFraming;
  client: "deno" | "node";
}

function parseOptions(args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    options: {
      rounds: { type: "string" },
      quick: { type: "boolean", default: false },
      peers: { type: "boolean", default: false },
      "peers-dir": { type: "string", default: ".bench" },
      only: { type: "string", default: "" },
      json: { type: "string", default: ".bench/results.json" },
      "v8-flags": { type: "string" },
      against: { type: "string" },
      "sdk-stdio": { type: "boolean", default: false },
      client: { type: "string", default: "deno" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return undefined;
  const rounds = Number(values.rounds ?? (values.quick ? 1 : 3));
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) {
    throw new Error(`--rounds must be 1-20 (got "${values.rounds}")`);
  }
  if (values.client !== "deno" && values.client !== "node") {
    throw new Error(`--client must be deno or node (got "${values.client}")`);
  }
  const absolute = (path: string) => path.startsWith("/") ? path : `${ROOT}${path}`;
  return {
    rounds,
    quick: values.quick,
    peers: values.peers,
    peersDir: absolute(values["peers-dir"]),
    only: values.only.split(",").map((s) => s.trim()).filter((s) => s.length > 0),
    json: absolute(values.json),
    v8Flags: values["v8-flags"],
    against: values.against,
    framing: values["sdk-stdio"] ? "sdk" : "lines",
    client: values.client,
  };
}

/**
 * Our source as of git revision `rev`, extracted (once) under .bench/against/<sha>, to run
 * next to the working tree.
 */
async function checkoutOf(
  rev: string,
): Promise<{ dir: string; label: string; runFlags: string[] }> {
  const git = (...args: string[]) => commandText("git", ["-C", ROOT, ...args]);
  const sha = (await git("rev-parse", "--short", "--verify", `${rev}^{commit}`))?.trim();
  if (!sha) throw new Error(`--against: "${rev}" is not a git revision of ${ROOT}`);
  const dir = `${ROOT}.bench/against/${sha}`;
  const ready = await Deno.stat(`${dir}/main.ts`).then(() => true, () => false);
  if (!ready) {
    // Extracted next to its place, then renamed: a failed extraction is never taken for one.
    const partial = `${dir}.partial`;
    await Deno.remove(partial, { recursive: true }).catch(() => {});
    await Deno.mkdir(partial, { recursive: true });
    const archive = new Deno.Command("git", {
      args: ["-C", ROOT, "archive", "--format=tar", sha],
      stdout: "piped",
    }).spawn();
    const tar = new Deno.Command("tar", { args: ["-x", "-C", partial], stdin: "piped" }).spawn();
    await archive.stdout.pipeTo(tar.stdin);
    const [a, t] = await Promise.all([archive.status, tar.status]);
    if (!a.success || !t.success) throw new Error(`--against: could not extract ${sha}`);
    await Deno.rename(partial, dir);
  }
  // The revision runs under its own flags (permissions, V8 flags), as its build would.
  const permissions = await import(`file://${dir}/src/permissions.ts`);
  progress(`--against ${rev}: ${sha} in ${dir}`);
  return { dir, label: sha, runFlags: permissions.runFlags() };
}

/** Runs each program once untimed, so that no cold start pays for filling caches. */
async function warmCaches(
  targets: Target[],
  framing: StdioFraming,
  client: ClientSide,
): Promise<void> {
  const server = stdioServer(framing);
  await commandText(server[0]!, server.slice(1));
  const native = await startNative();
  await native.stop();
  for (const target of targets) {
    if (target.id === "native") continue;
    const remote = target.remote ? await startNative() : undefined;
    try {
      const running = await target.start(remote?.url?.href);
      await client.close((await client.open(running.endpoint)).session);
      await running.stop();
    } catch {
      // Measured (and reported) in the rounds.
    } finally {
      await remote?.stop();
    }
  }
}

async function main(args: string[]): Promise<number> {
  const options = parseOptions(args);
  if (!options) {
    say(USAGE);
    return 0;
  }
  const started = performance.now();
  const counts = options.quick ? QUICK : FULL;
  const machine = await describeMachine();
  // With --v8-flags or --against, each of our targets runs next to the same target so varied.
  const variants: Variant[] = [];
  if (options.v8Flags) variants.push({ v8Flags: options.v8Flags });
  if (options.against) variants.push({ checkout: await checkoutOf(options.against) });
  const suffixes = variants.map((v) => v.v8Flags ? "+v8" : `@${v.checkout!.label}`);
  const varied = new Map(
    variants.flatMap((variant) => ourTargets(options.framing, variant)).map((t) => [t.id, t]),
  );
  let targets = ourTargets(options.framing).flatMap((t) => [
    t,
    ...suffixes.flatMap((suffix) => varied.get(t.id + suffix) ?? []),
  ]);
  const skippedPeers: Report["skippedPeers"] = [];
  if (options.peers) {
    await Deno.mkdir(options.peersDir, { recursive: true });
    if (machine.node === undefined) {
      for (const name of ["supergateway", "mcp-proxy", "mcp-remote"]) {
        skippedPeers.push({ name, reason: "node is not on PATH" });
      }
    } else {
      const peers = await peerTargets(options.peersDir, options.framing);
      targets.push(...peers.targets);
      for (const name of peers.missing) {
        skippedPeers.push({
          name,
          reason: `not installed: npm i --prefix ${options.peersDir} ${name}`,
        });
      }
    }
  }
  if (options.only.length > 0) {
    targets = targets.filter((t) =>
      t.id === "native" || options.only.some((part) => t.id.includes(part))
    );
  }
  for (const { name, reason } of skippedPeers) progress(`skipping ${name}: ${reason}`);
  progress(`machine: ${machineLine(machine)}`);
  let client: ClientSide;
  let node: NodeClientSide | undefined;
  if (options.client === "node") {
    if (machine.node === undefined) throw new Error("--client node: node is not on PATH");
    await Deno.mkdir(`${ROOT}.bench`, { recursive: true });
    client = node = await NodeClientSide.start(`${ROOT}.bench`, machine.node);
  } else client = new LocalClientSide(denoConnect(options.framing), `Deno ${Deno.version.deno}`);
  const clientRuntime = await client.runtime();
  progress(`client: the SDK's Client under ${clientRuntime}`);

  const runs = new Map<string, RunResult[]>(targets.map((t) => [t.id, []]));
  try {
    progress(`warming caches (${targets.length} targets)`);
    await warmCaches(targets, options.framing, client);
    for (let round = 1; round <= options.rounds; round++) {
      for (const target of targets) {
        let remote: (Running & { url?: URL }) | undefined;
        try {
          remote = target.remote ? await startNative() : undefined;
          const result = await measureTarget(target, counts, remote?.url?.href, client);
          runs.get(target.id)!.push(result);
          const failed = Object.entries(result.notes).filter(([, note]) => note !== "n/a");
          progress(
            `round ${round}/${options.rounds} ${target.id}: ` +
              `${(result.wallMs / 1000).toFixed(1)} s` +
              (failed.length ? `, ${failed.length} figure(s) failed: ${failed[0]![1]}` : ""),
          );
        } finally {
          await remote?.stop();
        }
      }
    }
  } finally {
    await node?.stop();
  }

  const baseline = runs.get("native") ?? [];
  const summaries = targets.map((t) => summarize(t, runs.get(t.id)!, baseline));
  const seconds = Math.round((performance.now() - started) / 1000);
  const command = ["deno task bench", ...args].join(" ");
  say(
    `${command}: ${machineLine(machine)}; client under ${clientRuntime}; ` +
      `${options.rounds} round(s), ${seconds} s`,
  );
  say("");
  say(markdown(summaries, counts.sessions));
  const report: Report = {
    generatedAt: new Date().toISOString(),
    command,
    durationSeconds: seconds,
    machine,
    clientRuntime,
    options: { ...options, counts },
    skippedPeers,
    targets: summaries,
  };
  await Deno.mkdir(options.json.slice(0, options.json.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(options.json, JSON.stringify(report, null, 2) + "\n");
  progress(`wrote ${options.json}`);
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    write(Deno.stderr, `bench: ${error instanceof Error ? error.message : error}`);
    Deno.exit(2);
  }
}
