// The README stays true: its flag table matches --help, its set-up commands use the pinned Deno,
// and it shows the test command that CI runs.

import assert from "node:assert/strict";
import { runCli } from "./support/cli.ts";

const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
const pinned = (await Deno.readTextFile(new URL("../.deno-version", import.meta.url))).trim();
const ci = await Deno.readTextFile(new URL("../.ci/run", import.meta.url));

/** The rows of the markdown table that follows `heading`, as "cell | cell", unquoted. */
function tableAfter(heading: string): string[] {
  const start = readme.indexOf(`\n${heading}\n`);
  assert.notEqual(start, -1, `README has no "${heading}" section`);
  const rows: string[] = [];
  for (const line of readme.slice(start + heading.length + 2).split("\n")) {
    if (line.startsWith("|")) {
      const cells = line.split("|").slice(1, -1).map((c) => c.trim().replaceAll("`", ""));
      if (cells[0] !== "flag" && !/^-+$/.test(cells[0]!)) rows.push(cells.join(" | "));
    } else if (rows.length > 0 || line.startsWith("#")) {
      break;
    }
  }
  return rows;
}

for (const mode of ["serve", "connect"]) {
  Deno.test(`readme: the ${mode} flag table matches ${mode} --help`, async () => {
    const help = await runCli([mode, "--help"]);
    const fromHelp = [...help.stdout.matchAll(/^ +((?:-\w, )?--[\w-]+(?: <[^>]+>)?) {2,}(.+)$/gm)]
      .map((m) => `${m[1]} | ${m[2]}`);
    assert.ok(fromHelp.length > 10, help.stdout);
    assert.deepEqual(tableAfter(`### ${mode} flags`), fromHelp);
  });
}

Deno.test("readme: set-up commands use the pinned Deno and CI's test command", () => {
  const npxVersions = [...readme.matchAll(/npx -y deno@([\d.]+)/g)].map((m) => m[1]);
  assert.ok(npxVersions.length >= 2);
  for (const version of npxVersions) assert.equal(version, pinned);
  assert.match(readme, /^deno task start\b/m);
  const testCommand = /deno task [a-z:]*test[a-z:]*/.exec(ci)?.[0];
  assert.ok(testCommand, ".ci/run runs a test task");
  assert.match(readme, new RegExp(`^${testCommand}\\b`, "m"));
});
