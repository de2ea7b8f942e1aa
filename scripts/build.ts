// `deno task build [--target <triple>]...`: compiles mcp-proxy into standalone binaries for each
// platform, with exactly the permission flags of src/permissions.ts baked in, into dist/, and
// writes dist/SHA256SUMS. Fails with one clear line when deno compile cannot get its runtime.

import { parseArgs } from "node:util";
import { join } from "node:path";
import { runFlags } from "../src/permissions.ts";
import { VERSION } from "../src/version.ts";

export const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
] as const;

export type Target = typeof TARGETS[number];

/** The binary's file name for a target: mcp-proxy-<target>[.exe]. */
export function binaryName(target: Target): string {
  return `mcp-proxy-${target}${target.includes("windows") ? ".exe" : ""}`;
}

/** The exact `deno compile` arguments for one target. */
export function compileArgs(target: Target, outDir: string): string[] {
  return [
    "compile",
    ...runFlags(),
    "--target",
    target,
    "--output",
    join(outDir, binaryName(target)),
    "main.ts",
  ];
}

const encoder = new TextEncoder();

function say(stream: typeof Deno.stdout | typeof Deno.stderr, text: string): void {
  stream.writeSync(encoder.encode(text + "\n"));
}

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Builds `targets` into `outDir`; returns the exit code. */
export async function build(targets: readonly Target[], outDir: string): Promise<number> {
  await Deno.mkdir(outDir, { recursive: true });
  const sums: string[] = [];
  for (const target of targets) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: compileArgs(target, outDir),
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!output.success) {
      const text = new TextDecoder().decode(output.stderr);
      const runtime = /denort|dl\.deno\.land|download/i.test(text);
      say(
        Deno.stderr,
        runtime
          ? `build: deno compile could not download its runtime base for ${target} (no network?); ` +
            "build where dl.deno.land is reachable, or point DENORT_BIN at a denort binary"
          : `build: deno compile failed for ${target}: ${lastLine(text)}`,
      );
      return 1;
    }
    const file = binaryName(target);
    sums.push(`${await sha256(join(outDir, file))}  ${file}`);
    say(Deno.stdout, `built ${join(outDir, file)}`);
  }
  await Deno.writeTextFile(join(outDir, "SHA256SUMS"), sums.join("\n") + "\n");
  say(Deno.stdout, `mcp-proxy ${VERSION}: ${targets.length} binaries and SHA256SUMS in ${outDir}`);
  return 0;
}

function lastLine(text: string): string {
  const lines = text.split("\n").map((line) => line.trim())
    .filter((line) => line && !/^\d+: |^at |Stack backtrace/.test(line));
  return lines.find((line) => line.startsWith("error:")) ?? lines.at(-1) ?? "unknown error";
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { target: { type: "string", multiple: true }, out: { type: "string" } },
    strict: true,
  });
  const wanted = values.target ?? [...TARGETS];
  const unknown = wanted.find((target) => !(TARGETS as readonly string[]).includes(target));
  if (unknown) {
    say(Deno.stderr, `build: unknown --target "${unknown}"; one of: ${TARGETS.join(", ")}`);
    Deno.exit(2);
  }
  Deno.exit(await build(wanted as Target[], values.out ?? "dist"));
}
