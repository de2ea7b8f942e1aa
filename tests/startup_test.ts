// serve -- <cmd> must start without the SDK: its modules build every Zod schema when loaded
// (70-90 ms here, more than our whole start). The modes that need it import it when chosen.

import assert from "node:assert/strict";
import { MAIN } from "./support/cli.ts";

interface InfoModule {
  specifier: string;
  dependencies?: Array<{ code?: { specifier: string }; isDynamic?: boolean }>;
}

/** Modules loaded by importing `root`: dynamic imports followed too when `dynamic`. */
async function staticGraph(root: string, dynamic = false): Promise<Set<string>> {
  const { stdout, success } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", root],
    stderr: "inherit",
  }).output();
  assert.ok(success, "deno info");
  const info = JSON.parse(new TextDecoder().decode(stdout)) as { modules: InfoModule[] };
  const bySpecifier = new Map(info.modules.map((module) => [module.specifier, module]));
  const seen = new Set<string>();
  const visit = (specifier: string) => {
    if (seen.has(specifier)) return;
    seen.add(specifier);
    for (const dependency of bySpecifier.get(specifier)?.dependencies ?? []) {
      if ((dynamic || !dependency.isDynamic) && dependency.code) visit(dependency.code.specifier);
    }
  };
  visit(new URL(`file://${root}`).href);
  return seen;
}

Deno.test("startup: main.ts loads neither the SDK nor oauth4webapi until a mode needs them", async () => {
  const graph = [...await staticGraph(MAIN)];
  assert.ok(graph.some((specifier) => specifier.endsWith("/src/serve.ts")), graph.join("\n"));
  const heavy = graph.filter((specifier) =>
    /modelcontextprotocol|oauth4webapi|\/src\/sdk\.ts$/.test(specifier)
  );
  assert.deepEqual(heavy, [], "statically imported by main.ts");
});

Deno.test("startup: no mode but the gateway imports a node: module", async () => {
  // The first node: import makes Deno set up its Node layer: about 5 ms more start-up for
  // serve <url>, and memory.
  for (const module of ["main.ts", "src/connect.ts", "src/cli_remote.ts"]) {
    const graph = [...await staticGraph(MAIN.replace(/main\.ts$/, module))];
    const node = graph.filter((specifier) => specifier.startsWith("node:"));
    assert.deepEqual(node, [], `statically imported by ${module}`);
  }
});

Deno.test("startup: connect and serve <url> never load the SDK, whatever the transport", async () => {
  // The SDK costs about 40 MB of memory and its Zod schemas once loaded; our own client
  // transports (Streamable HTTP and legacy SSE) and OAuth need none of it.
  for (const module of ["connect.ts", "cli_remote.ts"]) {
    const graph = [...await staticGraph(MAIN.replace(/main\.ts$/, `src/${module}`), true)];
    assert.ok(
      graph.some((specifier) => specifier.endsWith("/src/upstream/sse_client.ts")) ||
        module !== "connect.ts",
    );
    const sdk = graph.filter((specifier) => /modelcontextprotocol|\/src\/sdk\.ts$/.test(specifier));
    assert.deepEqual(sdk, [], `imported, statically or dynamically, by src/${module}`);
  }
});
