// deno.json's tasks grant exactly what src/permissions.ts says, and nothing grants everything.

import assert from "node:assert/strict";
import { runFlags } from "../src/permissions.ts";
import config from "../deno.json" with { type: "json" };

Deno.test("permissions: the start task runs with the modes' flags and no more", () => {
  assert.equal(config.tasks.start, `deno run ${runFlags().join(" ")} main.ts serve`);
});

Deno.test("permissions: no task grants -A or --allow-all", () => {
  for (const [name, command] of Object.entries(config.tasks)) {
    assert.doesNotMatch(command, /(^|\s)(-A|--allow-all)(\s|$)/, name);
  }
});
