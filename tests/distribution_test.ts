// Distribution: the exact `deno compile` arguments per target (the permission flags of
// src/permissions.ts), the build's one-line failure without its runtime base, the permissions
// revoked after dispatch, the narrowed `deno run` example, the JSR manifest and the
// release workflows.

import assert from "node:assert/strict";
import { join } from "node:path";
import { binaryName, compileArgs, TARGETS } from "../scripts/build.ts";
import { runFlags } from "../src/permissions.ts";
import config from "../deno.json" with { type: "json" };
import { MAIN, ROOT, runCli } from "./support/cli.ts";

const FLAGS = [
  "--no-prompt",
  "--allow-net",
  "--allow-run",
  "--allow-env",
  "--allow-read",
  "--allow-write",
  "--v8-flags=--max-semi-space-size=2,--no-concurrent-recompilation",
];

Deno.test("build: the deno compile arguments of every target", async (t) => {
  assert.deepEqual(runFlags(), FLAGS, "the permissions every mode needs, and no more");
  assert.deepEqual([...TARGETS], [
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
    "x86_64-pc-windows-msvc",
  ]);
  for (const target of TARGETS) {
    await t.step(target, () => {
      const file = `mcp-proxy-${target}${target === "x86_64-pc-windows-msvc" ? ".exe" : ""}`;
      assert.equal(binaryName(target), file);
      assert.deepEqual(compileArgs(target, "dist"), [
        "compile",
        ...FLAGS,
        "--target",
        target,
        "--output",
        join("dist", file),
        "main.ts",
      ]);
    });
  }
  for (const flag of ["--allow-all", "-A", "--allow-ffi", "--allow-sys"]) {
    assert.ok(!runFlags().includes(flag), `${flag} is never granted`);
  }
});

Deno.test("build: without its runtime base, one clear line and exit 1; a bad --target exits 2", async () => {
  const out = await Deno.makeTempDir();
  const denoDir = await Deno.makeTempDir();
  try {
    // An empty DENO_DIR and an unreachable proxy: the denort download fails wherever this runs.
    const result = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--allow-run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "scripts/build.ts",
        "--target",
        "x86_64-unknown-linux-gnu",
        "--out",
        out,
      ],
      cwd: ROOT,
      env: {
        DENO_DIR: denoDir,
        HTTPS_PROXY: "http://127.0.0.1:9",
        HTTP_PROXY: "http://127.0.0.1:9",
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(result.stderr).trim();
    assert.equal(result.code, 1, stderr);
    assert.equal(stderr.split("\n").length, 1, stderr);
    assert.match(
      stderr,
      /^build: deno compile could not download its runtime base for x86_64-unknown-linux-gnu/,
    );
    const bad = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--allow-run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "scripts/build.ts",
        "--target",
        "sparc-sun-solaris",
      ],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(bad.code, 2);
    assert.match(
      new TextDecoder().decode(bad.stderr),
      /unknown --target "sparc-sun-solaris"; one of: x86_64-unknown-linux-gnu/,
    );
  } finally {
    await Deno.remove(out, { recursive: true }).catch(() => {});
    await Deno.remove(denoDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("permissions: what a run does not use is revoked right after dispatch", async () => {
  const connect = await runCli(
    ["connect", "https://mcp.example.com/mcp", "--header", "Authorization: Bearer x", "--debug"],
    { stdin: "" },
  );
  assert.match(
    connect.stderr,
    /debug: revoked the permissions this run does not use: read, write, run/,
  );
  const oauth = await runCli(["connect", "https://mcp.example.com/mcp", "--debug"], { stdin: "" });
  assert.doesNotMatch(oauth.stderr, /revoked/, "OAuth keeps the token store and the browser");
});

Deno.test("permissions: the issue's narrowed `deno run` example runs as written", async () => {
  // deno run --allow-net=mcp.example.com --allow-env=TOKEN main.ts connect ... (no -A, no prompt)
  const result = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-net=mcp.example.com",
      "--allow-env=TOKEN",
      MAIN,
      "connect",
      "https://mcp.example.com/mcp",
      "--header",
      "Authorization: Bearer ${TOKEN}",
    ],
    env: { TOKEN: "narrow-token-7f3a" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(result.stderr);
  assert.equal(result.code, 0, stderr);
  assert.doesNotMatch(stderr, /missing permission|NotCapable|\s+at /);
  assert.ok(!stderr.includes("narrow-token-7f3a"));
});

Deno.test("jsr: the manifest names the package, its CLI and library entries, and what ships", () => {
  assert.equal(config.name, "@x/mcp-proxy");
  assert.match(config.version, /^\d+\.\d+\.\d+/);
  assert.deepEqual(config.exports, { ".": "./main.ts", "./mod": "./src/mod.ts" });
  assert.deepEqual(config.publish.include, [
    "main.ts",
    "src/",
    "deno.json",
    "README.md",
    "LICENSE",
  ]);
  for (const excluded of ["tests/", "scripts/"]) {
    assert.ok(config.publish.exclude.includes(excluded));
  }
});

Deno.test("workflows: actions pinned by SHA, read-only by default, release builds and publishes", async () => {
  for (const name of ["ci.yml", "release.yml"]) {
    const text = await Deno.readTextFile(new URL(`../.github/workflows/${name}`, import.meta.url));
    const uses = [...text.matchAll(/uses:\s*(\S+)/g)].map((m) => m[1]!);
    assert.ok(uses.length > 0, name);
    for (const action of uses) assert.match(action, /@[0-9a-f]{40}$/, `${name}: ${action} pinned`);
    assert.match(text, /^permissions:\n {2}contents: read$/m, `${name}: contents: read`);
  }
  const release = await Deno.readTextFile(
    new URL("../.github/workflows/release.yml", import.meta.url),
  );
  assert.match(release, /deno task build/);
  assert.match(release, /gh release create "\$GITHUB_REF_NAME" dist\/\*/);
  assert.match(release, /id-token: write/);
  assert.match(release, /deno publish/);
  const ci = await Deno.readTextFile(new URL("../.github/workflows/ci.yml", import.meta.url));
  assert.match(ci, /os: \[ubuntu-latest, macos-latest, windows-latest\]/);
  // Windows runs command resolution end to end (its Windows-only case), and every file it names.
  const windows = ci.match(/- run: >-\n((?:\s{10}.*\n)+)\s+if: runner\.os == 'Windows'/)?.[1];
  assert.ok(windows, "a Windows test step");
  const files: string[] = windows.match(/tests\/\S+_test\.ts/g) ?? [];
  assert.ok(files.includes("tests/resolve_command_test.ts"), windows);
  for (const file of files) await Deno.stat(new URL(`../${file}`, import.meta.url));
});
