// The gateway config (serve --config): parsing, defaults, JSONC, ${VAR} interpolation, loading
// from a file and an http URL, and sameServer. The validation rules: gateway_config_rules_test.ts.

import assert from "node:assert/strict";
import { ProxyError, UsageError } from "../src/errors.ts";
import {
  ConfigError,
  type GatewayConfig,
  loadConfig,
  sameServer,
  type ServerConfig,
} from "../src/gateway/config.ts";
import { config, env, parse, problemsOf } from "./support/gateway_config.ts";

const DEFAULT_OPTIONS = { authTokens: [], required: false, disabled: false };

Deno.test("gateway config: a full example parses into typed servers", () => {
  const parsed = parse(`{
    "mcpProxy": { "host": "127.0.0.1", "port": 8080,
      "merged": { "enabled": true, "route": "/all", "name": "hub", "separator": "." },
      "options": { "authTokens": ["default-token"], "timeout": 45, "required": true } },
    "mcpServers": {
      "fs": { "command": "npx", "args": ["-y", "x"], "env": { "K": "v" }, "cwd": "/srv" },
      "remote": {
        "url": "https://host/mcp", "headers": { "Authorization": "Bearer \${TOKEN}" },
        "transport": "streamable-http",
        "options": { "toolFilter": { "mode": "block", "list": ["delete_*"] }, "authTokens": ["t1"],
          "timeout": "30s", "required": true, "disabled": false }
      },
      "off": { "url": "https://off.example/sse", "type": "sse", "options": { "disabled": true } }
    }
  }`);
  const expected: GatewayConfig = {
    host: "127.0.0.1",
    port: 8080,
    merged: { enabled: true, route: "/all", name: "hub", separator: "." },
    servers: [
      {
        kind: "stdio",
        name: "fs",
        command: "npx",
        args: ["-y", "x"],
        env: { K: "v" },
        cwd: "/srv",
        options: {
          authTokens: ["default-token"],
          timeoutMs: 45_000,
          required: true,
          disabled: false,
        },
      },
      {
        kind: "remote",
        name: "remote",
        url: "https://host/mcp",
        headers: { Authorization: "Bearer s3cret-token" },
        transport: "streamable-http",
        options: {
          toolFilter: { mode: "block", list: ["delete_*"] },
          authTokens: ["t1"],
          timeoutMs: 30_000,
          required: true,
          disabled: false,
        },
      },
      {
        kind: "remote",
        name: "off",
        url: "https://off.example/sse",
        headers: {},
        transport: "sse",
        options: {
          authTokens: ["default-token"],
          timeoutMs: 45_000,
          required: false,
          disabled: true,
        },
      },
    ],
  };
  assert.deepEqual(parsed, expected);
});

Deno.test("gateway config: defaults", async (t) => {
  const cases: Array<[string, string, Partial<GatewayConfig> & { server?: ServerConfig }]> = [
    ["a bare stdio server", config({ a: { command: "srv" } }), {
      merged: { enabled: true, route: "", name: "mcp-proxy", separator: "__" },
      server: {
        kind: "stdio",
        name: "a",
        command: "srv",
        args: [],
        env: {},
        options: DEFAULT_OPTIONS,
      },
    }],
    ["a bare remote server is auto", config({ a: { url: "https://x.example/mcp" } }), {
      server: {
        kind: "remote",
        name: "a",
        url: "https://x.example/mcp",
        headers: {},
        transport: "auto",
        options: DEFAULT_OPTIONS,
      },
    }],
    [
      "defaults from mcpProxy.options, overridden key by key",
      config(
        {
          a: {
            command: "srv",
            options: { timeout: "500ms", toolFilter: { mode: "allow", list: [] } },
          },
        },
        { options: { toolFilter: { mode: "block", list: ["x"] }, authTokens: ["d"], timeout: 0 } },
      ),
      {
        server: {
          kind: "stdio",
          name: "a",
          command: "srv",
          args: [],
          env: {},
          options: {
            toolFilter: { mode: "allow", list: [] },
            authTokens: ["d"],
            timeoutMs: 500,
            required: false,
            disabled: false,
          },
        },
      },
    ],
    [
      "a disabled server is never required",
      config(
        { a: { command: "srv", options: { disabled: true } } },
        { options: { required: true } },
      ),
      {
        server: {
          kind: "stdio",
          name: "a",
          command: "srv",
          args: [],
          env: {},
          options: { authTokens: [], required: false, disabled: true },
        },
      },
    ],
    [
      "client type keys",
      config({
        a: { type: "http", url: "https://x.example/mcp" },
      }),
      {
        server: {
          kind: "remote",
          name: "a",
          url: "https://x.example/mcp",
          headers: {},
          transport: "streamable-http",
          options: DEFAULT_OPTIONS,
        },
      },
    ],
    [
      "port as a string, host in brackets, merged off",
      config(
        { "a__b": { command: "srv", type: "stdio", transportType: "stdio" } },
        { host: "[::1]", port: "0", merged: { enabled: false } },
      ),
      {
        host: "::1",
        port: 0,
        merged: { enabled: false, route: "", name: "mcp-proxy", separator: "__" },
      },
    ],
  ];
  for (const [name, text, expected] of cases) {
    await t.step(name, () => {
      const parsed = parse(text);
      const { server, ...rest } = expected;
      for (const [key, value] of Object.entries(rest)) {
        assert.deepEqual(parsed[key as keyof GatewayConfig], value, key);
      }
      if (server) assert.deepEqual(parsed.servers, [server]);
    });
  }
});

Deno.test("gateway config: comments, trailing commas, a BOM, file order", () => {
  const parsed = parse(`\uFEFF// servers for the team
{
  /* the proxy */
  "mcpProxy": { "port": 9000, },
  "mcpServers": {
    "2": { "url": "https://x.example/mcp//not-a-comment", }, // remote
    "1": { "command": "a /* not a comment */", "args": ["b", "c",], },
  },
}
`);
  assert.equal(parsed.port, 9000);
  assert.deepEqual(parsed.servers.map((server) => server.name), ["2", "1"]);
  const [remote, stdio] = parsed.servers;
  assert.equal(remote?.kind === "remote" && remote.url, "https://x.example/mcp//not-a-comment");
  assert.equal(stdio?.kind === "stdio" && stdio.command, "a /* not a comment */");
  assert.deepEqual(stdio?.kind === "stdio" && stdio.args, ["b", "c"]);
});

Deno.test("gateway config: ${VAR} interpolation in every string value", () => {
  const parsed = parse(config({
    r: {
      url: "${BASE}/mcp",
      headers: { Authorization: "Bearer ${TOKEN}", "X-Literal": "$${TOKEN} $TOKEN ${1X}" },
      options: { authTokens: ["${TOKEN}"], toolFilter: { mode: "allow", list: ["${TOKEN}_*"] } },
    },
    s: { command: "${BASE}", args: ["--key=${TOKEN}"], env: { KEY: "${TOKEN}" }, cwd: "/${TOKEN}" },
  }, { host: "${TOKEN}", merged: { name: "${TOKEN}" } }));
  assert.equal(parsed.host, "s3cret-token");
  assert.equal(parsed.merged.name, "s3cret-token");
  assert.deepEqual(parsed.servers[0], {
    kind: "remote",
    name: "r",
    url: "https://api.example.com/mcp",
    headers: { Authorization: "Bearer s3cret-token", "X-Literal": "$s3cret-token $TOKEN ${1X}" },
    transport: "auto",
    options: {
      toolFilter: { mode: "allow", list: ["s3cret-token_*"] },
      authTokens: ["s3cret-token"],
      required: false,
      disabled: false,
    },
  });
  assert.deepEqual(parsed.servers[1], {
    kind: "stdio",
    name: "s",
    command: "https://api.example.com",
    args: ["--key=s3cret-token"],
    env: { KEY: "s3cret-token" },
    cwd: "/s3cret-token",
    options: DEFAULT_OPTIONS,
  });
  assert.deepEqual(
    problemsOf(
      config({ a: { command: "x", env: { K: "${NOPE}-${NOPE}-${ALSO}" }, args: ["${NOPE}"] } }),
    ),
    [
      "mcpServers.a.args[0]: uses ${NOPE}, but NOPE is not set",
      "mcpServers.a.env.K: uses ${NOPE}, but NOPE is not set",
      "mcpServers.a.env.K: uses ${ALSO}, but ALSO is not set",
    ],
  );
});

Deno.test("gateway config: loadConfig reads a file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/servers.json`;
    await Deno.writeTextFile(path, '// team\n{"mcpServers": {"a": {"command": "srv",},},}\n');
    const loaded = await loadConfig(path, { env, allowHttp: false });
    assert.deepEqual(loaded.servers.map((server) => server.name), ["a"]);
    const viaUrl = await loadConfig(new URL(`file://${path}`).href, { env, allowHttp: false });
    assert.deepEqual(viaUrl, loaded);

    await Deno.writeTextFile(path, '{"mcpServers": {"a": {"command": 1}}}');
    await assert.rejects(() => loadConfig(path, { env, allowHttp: false }), (error) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(
        error.message,
        `${path}: 1 problem\nmcpServers.a.command: expected a command, got 1`,
      );
      return true;
    });
    await assert.rejects(
      () => loadConfig(`${dir}/missing.json`, { env, allowHttp: false }),
      (error) =>
        error instanceof UsageError &&
        error.message === `cannot read the config file "${dir}/missing.json": no such file`,
    );
    await assert.rejects(
      () => loadConfig("ftp://host/servers.json", { env, allowHttp: false }),
      (error) =>
        error instanceof UsageError &&
        error.message ===
          '--config must be a file or an https:// URL (got "ftp://host/servers.json")',
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gateway config: loadConfig fetches a URL, plain http only with allowHttp", async () => {
  const body = '{"mcpServers": {"a": {"command": "srv"}, /* remote */ "b": {"url": "${BASE}"}}}';
  await using site = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { pathname } = new URL(request.url);
    if (pathname === "/servers.json") return new Response(body);
    if (pathname === "/bad.json") return new Response('{"mcpServers": {"a": {}}}');
    return new Response("no", { status: 404 });
  });
  const base = `http://127.0.0.1:${site.addr.port}`;
  const loaded = await loadConfig(`${base}/servers.json`, { env, allowHttp: true });
  assert.deepEqual(loaded.servers.map((server) => server.name), ["a", "b"]);

  await assert.rejects(
    () => loadConfig(`${base}/servers.json`, { env, allowHttp: false }),
    (error) =>
      error instanceof UsageError &&
      error.message === `the config URL must be https:// (got "${base}/servers.json"); ` +
          "pass --allow-http to use plain HTTP",
  );
  await assert.rejects(
    () => loadConfig(`${base}/nothing.json?token=abc`, { env, allowHttp: true }),
    (error) =>
      error instanceof ProxyError && !(error instanceof UsageError) &&
      error.message === `cannot load the config from ${base}/nothing.json?...: HTTP 404 Not Found`,
  );
  await assert.rejects(
    () => loadConfig(`${base}/bad.json`, { env, allowHttp: true }),
    (error) =>
      error instanceof ConfigError &&
      error.message === `${base}/bad.json: 1 problem\n` +
          'mcpServers.a: expected exactly one of "command" (stdio) or "url" (remote), got neither',
  );
  await assert.rejects(
    () =>
      loadConfig(`${base}/servers.json`, {
        env,
        allowHttp: true,
        fetch: () => Promise.reject(new ProxyError("upstream", "cannot reach the host: refused")),
      }),
    (error) =>
      error instanceof ProxyError &&
      error.message ===
        `cannot load the config from ${base}/servers.json: cannot reach the host: refused`,
  );
});

Deno.test("gateway config: an https URL, and a redirect from it to plain http", async () => {
  const body = '{"mcpServers": {"a": {"command": "srv"}}}';
  const answer = (url: string) => {
    const response = new Response(body);
    Object.defineProperty(response, "url", { value: url });
    return Promise.resolve(response);
  };
  const location = "https://user:pw@config.example/servers.json?key=1";
  const loaded = await loadConfig(location, {
    env,
    allowHttp: false,
    fetch: (url) => answer(String(url)),
  });
  assert.equal(loaded.servers[0]?.name, "a");
  await assert.rejects(
    () =>
      loadConfig(location, {
        env,
        allowHttp: false,
        fetch: () => answer("http://config.example/servers.json"),
      }),
    (error) =>
      error instanceof UsageError &&
      error.message === "the config URL https://config.example/servers.json?... redirected to " +
          "plain http:// (http://config.example/servers.json); pass --allow-http to accept that",
  );
});

Deno.test("gateway config: sameServer", async (t) => {
  const [a, b] = parse(config({
    a: { command: "x", args: ["1"], env: { A: "1", B: "2" }, options: { timeout: 5 } },
    r: { url: "https://x.example/mcp", headers: { A: "1" } },
  })).servers as [ServerConfig, ServerConfig];
  const cases: Array<[string, ServerConfig, ServerConfig, boolean]> = [
    ["itself", a, a, true],
    [
      "parsed again, env keys in another order",
      a,
      parse(config({
        a: { env: { B: "2", A: "1" }, args: ["1"], command: "x", options: { timeout: "5s" } },
      })).servers[0]!,
      true,
    ],
    ["another argument", a, { ...a, args: ["2"] } as ServerConfig, false],
    ["another option", a, { ...a, options: { ...a.options, required: true } }, false],
    ["a filter added", a, {
      ...a,
      options: { ...a.options, toolFilter: { mode: "allow", list: [] } },
    }, false],
    ["stdio vs remote", a, b, false],
    ["another header value", b, { ...b, headers: { A: "2" } } as ServerConfig, false],
    ["another transport", b, { ...b, transport: "sse" } as ServerConfig, false],
  ];
  for (const [name, x, y, same] of cases) {
    await t.step(name, () => assert.equal(sameServer(x, y), same));
  }
});
