// Hostile values in flags and configs: header injection (CR, LF, control characters) in --header
// and config headers, directly or through ${VAR}; path traversal through server names, the merged
// route and request paths to a gateway; and token-store folders a server URL cannot steer.

import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { type EnvAccess, parseCli } from "../../src/cli.ts";
import { UsageError } from "../../src/errors.ts";
import { ConfigError, parseConfig } from "../../src/gateway/config.ts";
import { ServerStore } from "../../src/oauth/store.ts";
import { runCli } from "../support/cli.ts";
import { initializeJson } from "../support/client.ts";
import { startGateway, stdioServer, tempDir, writeConfig } from "../support/gateway.ts";
import { rawRequest } from "../support/hostile.ts";

const SECRET = "sk-live-0f3a9c";

function envOf(values: Record<string, string>): EnvAccess {
  return { get: (name) => values[name], readable: () => true };
}

/** Header values that would split a request, or that no header can carry. */
const BAD_VALUES: Array<[string, string]> = [
  ["CR LF", `${SECRET}\r\nInjected: yes`],
  ["LF", `${SECRET}\nInjected: yes`],
  ["CR", `${SECRET}\rInjected: yes`],
  ["CR LF CR LF (a body)", `${SECRET}\r\n\r\nGET /admin HTTP/1.1`],
  ["ESC", `${SECRET}\u001b[2J`],
  ["DEL", `${SECRET}\u007f`],
  ["a C0 control", `${SECRET}\u0001`],
  ["U+2028", `${SECRET}\u2028Injected: yes`],
  ["outside Latin-1", `${SECRET}\u20ac`],
];

Deno.test("--header: line breaks and control characters are usage errors that never show the value", async (t) => {
  for (const [name, value] of BAD_VALUES) {
    for (
      const [how, spec, env] of [
        ["inline", `X-Api-Key: ${value}`, {}],
        ["through ${VAR}", "X-Api-Key: ${EVIL}", { EVIL: value }],
      ] as const
    ) {
      for (const mode of ["connect", "serve"]) {
        await t.step(`${name}, ${how}, ${mode}`, () => {
          const args = mode === "connect"
            ? ["connect", "https://mcp.example/mcp", "--header", spec]
            : ["serve", "https://mcp.example/mcp", "--header", spec];
          assert.throws(() => parseCli(args, envOf(env)), (error) => {
            assert.ok(error instanceof UsageError, `not a usage error: ${error}`);
            assert.match(error.message, /--header "X-Api-Key"/);
            assert.ok(!error.message.includes(SECRET), `the value leaked: ${error.message}`);
            return true;
          });
        });
      }
    }
  }
  await t.step("the real CLI exits 2 before connecting, stdout empty", async () => {
    for (const value of [BAD_VALUES[0]![1], BAD_VALUES[4]![1]]) {
      const result = await runCli(
        ["connect", "http://127.0.0.1:9/mcp", "--header", "X-Api-Key: ${EVIL}"],
        { env: { EVIL: value }, stdin: "" },
      );
      assert.equal(result.code, 2, `${JSON.stringify(value)}: ${result.stderr}`);
      assert.equal(result.stdout, "");
      assert.match(result.stderr, /--header "X-Api-Key"/);
      assert.ok(!result.stderr.includes(SECRET));
    }
  });
  await t.step("a tab and Latin-1 are fine (RFC 9110 field values)", () => {
    const parsed = parseCli(
      ["connect", "https://mcp.example/mcp", "--header", "X-Name: caf\u00e9\tna\u00efve"],
      envOf({}),
    );
    assert.equal(parsed.mode, "connect");
  });
});

Deno.test("config headers: line breaks and control characters from ${VAR} are problems", () => {
  const env: Record<string, string> = {};
  const headers: Record<string, string> = {};
  BAD_VALUES.forEach(([, value], i) => {
    env[`EVIL${i}`] = value;
    headers[`X-H${i}`] = `\${EVIL${i}}`;
  });
  let problems: string[] = [];
  try {
    parseConfig(
      JSON.stringify({ mcpServers: { r: { url: "https://mcp.example/mcp", headers } } }),
      "servers.json",
      (name) => env[name],
    );
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    problems = error.problems;
  }
  const accepted = BAD_VALUES.flatMap(([name], i) =>
    problems.some((problem) => problem.startsWith(`mcpServers.r.headers.X-H${i}: `))
      ? []
      : [`${name} from \${EVIL${i}}`]
  );
  assert.deepEqual(accepted, [], "header values a request cannot carry were accepted");
  assert.ok(!problems.join("\n").includes(SECRET), "the values are not shown");
});

/** The problems parseConfig reports for a config with these servers and mcpProxy. */
function problemsOf(servers: Record<string, unknown>, mcpProxy?: unknown): string[] {
  try {
    parseConfig(
      JSON.stringify(mcpProxy ? { mcpProxy, mcpServers: servers } : { mcpServers: servers }),
      "servers.json",
      () => undefined,
    );
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems;
  }
  return [];
}

Deno.test("config: a server name or the merged route cannot traverse or escape a path", async (t) => {
  const names = [
    "..",
    ".",
    "../etc",
    "a/b",
    "a\\b",
    "a/../b",
    "%2e%2e",
    "a%2Fb",
    ".hidden",
    "a b",
    "a\u0000b",
    "a\nb",
    "\u0430dmin", // Cyrillic a
    "\uff41", // fullwidth a
    "",
    "a?b",
    "a#b",
    "~root",
  ];
  for (const name of names) {
    await t.step(`name ${JSON.stringify(name)}`, () => {
      const problems = problemsOf({ [name]: { command: "srv" } });
      assert.equal(problems.length, 1, JSON.stringify(problems));
      assert.match(problems[0]!, /expected a server name of 1-64 letters, digits, _ or -/);
    });
  }
  for (const route of ["/../x", "/a/b", "//x", "/.", "/..", "/%2e%2e", "/a%2fb", "/x/", "/a\\b"]) {
    await t.step(`merged route ${JSON.stringify(route)}`, () => {
      const problems = problemsOf({ s: { command: "srv" } }, { merged: { route } });
      assert.equal(problems.length, 1, JSON.stringify(problems));
      assert.match(problems[0]!, /^mcpProxy\.merged\.route: expected "" \(\/mcp and \/sse\)/);
    });
  }
});

Deno.test("gateway: no spelling of a path reaches a token-protected server without its token", async () => {
  await using dir = await tempDir();
  const path = await writeConfig(dir.path, {
    mcpServers: {
      locked: { ...stdioServer("faulty_stdio.ts"), options: { authTokens: ["tok-locked"] } },
      open: stdioServer("faulty_stdio.ts"),
    },
  });
  await using gateway = await startGateway(path);
  await gateway.waitState(["locked", "open"]);
  const port = Number(new URL(gateway.url).port);
  const initialize = initializeJson();
  const post = (target: string, extra: string[] = []) =>
    rawRequest(port, [
      `POST ${target} HTTP/1.1`,
      `host: localhost:${port}`,
      "content-type: application/json",
      "accept: application/json, text/event-stream",
      ...extra,
    ], initialize);
  const spellings = [
    "/open/../locked/mcp",
    "/open/%2e%2e/locked/mcp",
    "/open/%2E%2E/locked/mcp",
    "/open/.%2e/locked/mcp",
    "/open/..%2Flocked/mcp",
    "/open%2F..%2Flocked/mcp",
    "/open/mcp/../../locked/mcp",
    "/./locked/mcp",
    "/locked/./mcp",
    "/locked/x/../mcp",
    "//locked/mcp",
    "/locked//mcp",
    "/locked/mcp/",
    "/locked/mcp/.",
    "/LOCKED/mcp",
    "/Locked/mcp",
    "/%6Cocked/mcp",
    "/locked%2Fmcp",
    "/locked/mcp%00",
    "/locked/mcp;x",
    "/locked/message",
    "/locked/messages",
    "\\locked\\mcp",
    "/open\\..\\locked/mcp",
    "http://localhost/locked/mcp",
  ];
  const through: string[] = [];
  for (const target of spellings) {
    const answer = await post(target);
    if (answer.closed) continue;
    if (answer.status < 300 || answer.headers.get("mcp-session-id")) {
      through.push(`${target}: ${answer.status}`);
    }
  }
  assert.deepEqual(through, [], "reached the locked server without its token");
  assert.deepEqual((await gateway.health()).sessions, { streamable: 0, sse: 0 });
  // The controls: the locked server with its token, and the open one without.
  for (
    const [target, extra] of [["/locked/mcp", ["authorization: Bearer tok-locked"]], [
      "/open/mcp",
      [],
    ]] as const
  ) {
    const answer = await post(target, [...extra]);
    assert.ok(!answer.closed && answer.status === 200, `${target}: ${JSON.stringify(answer)}`);
  }
});

Deno.test("token store: a server URL or resource cannot choose where tokens are written", async () => {
  await using dir = await tempDir();
  const configDir = join(dir.path, "config");
  const hostile: Array<[string, string | undefined]> = [
    ["https://mcp.example/../../../../etc/passwd", undefined],
    ["https://mcp.example/%2e%2e/%2e%2e/%2e%2e/tmp/x", "../../../../tmp/evil"],
    ["https://mcp.example/mcp", "/etc/cron.d/evil"],
    ["https://mcp.example/mcp", "C:\\Windows\\System32\\evil"],
    ["https://..%2f..%2f@mcp.example/mcp", "\u0000"],
    ["file:///etc/passwd", "..\\..\\evil"],
  ];
  const folders = new Set<string>();
  for (const [url, resource] of hostile) {
    const store = await ServerStore.open(configDir, new URL(url), resource);
    await store.writeTokens({ access_token: "a", refresh_token: "r" });
    await store.writeClient({ client_id: "c", issuer: "https://as.example" });
    const where = relative(join(configDir, "servers"), store.dir);
    assert.match(where, /^[0-9a-f]{24}$/, `${url} + ${resource} -> ${store.dir}`);
    folders.add(where);
  }
  assert.equal(folders.size, hostile.length, "one folder per server URL and resource");
  // Nothing was written anywhere but in those folders.
  const files: string[] = [];
  for await (const file of walk(dir.path)) files.push(relative(configDir, file));
  for (const file of files) {
    assert.match(
      file,
      /^servers\/[0-9a-f]{24}\/(server|tokens|client)\.json$|^servers\\[0-9a-f]{24}\\/,
    );
  }
  // The same server always gets the same folder (the next run finds its tokens).
  const again = await ServerStore.open(configDir, new URL(hostile[0]![0]), hostile[0]![1]);
  assert.ok(folders.has(relative(join(configDir, "servers"), again.dir)));
});

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* walk(path);
    else yield path;
  }
}
