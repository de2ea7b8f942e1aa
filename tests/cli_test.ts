// The command line: parsing and validation (table-driven, pure), and the real CLI's streams and
// exit codes for help, version and usage errors.

import assert from "node:assert/strict";
import { type ConnectOptions, type EnvAccess, parseCli, type ServeOptions } from "../src/cli.ts";
import { UsageError } from "../src/errors.ts";
import { fixtureCommand, runCli, startServe } from "./support/cli.ts";
import { connectHttp, textOf } from "./support/client.ts";
import config from "../deno.json" with { type: "json" };

const noEnv: EnvAccess = { get: () => undefined, readable: () => true };

function envOf(values: Record<string, string>): EnvAccess {
  return { get: (name) => values[name], readable: () => true };
}

function serve(args: string[], env: EnvAccess = noEnv): ServeOptions {
  const parsed = parseCli(["serve", ...args], env);
  assert.equal(parsed.mode, "serve");
  return parsed as ServeOptions;
}

Deno.test("cli: serve flags parse into typed options", async (t) => {
  const cases: Array<[string, string[], Partial<ServeOptions>]> = [
    ["defaults", [], {
      host: "127.0.0.1",
      port: 8080,
      command: undefined,
      sessionTimeoutMs: 300_000,
      maxBody: 4 * 1024 * 1024,
      stateless: false,
      logLevel: "info",
      env: {},
      allowedHosts: [],
      corsOrigins: [],
      shutdownGraceMs: 3000,
    }],
    ["command after --", ["--port", "0", "--", "npx", "-y", "server", "--port", "9"], {
      port: 0,
      command: { command: "npx", args: ["-y", "server", "--port", "9"] },
    }],
    ["command without --", ["-p", "1234", "node", "server.js", "--verbose"], {
      port: 1234,
      command: { command: "node", args: ["server.js", "--verbose"] },
    }],
    ["flag=value forms", ["--port=0", "--host=::1", "--max-body=512kb"], {
      port: 0,
      host: "::1",
      maxBody: 512 * 1024,
    }],
    ["bracketed IPv6 host", ["--host", "[::1]"], { host: "::1" }],
    ["repeatable env", ["--env", "A=1", "--env", "B=x=y", "--env", "EMPTY="], {
      env: { A: "1", B: "x=y", EMPTY: "" },
    }],
    ["durations", ["--session-timeout", "90s", "--shutdown-grace", "250ms"], {
      sessionTimeoutMs: 90_000,
      shutdownGraceMs: 250,
    }],
    ["bare duration is seconds, 0 disables", ["--session-timeout", "0"], { sessionTimeoutMs: 0 }],
    ["hours", ["--session-timeout", "1h"], { sessionTimeoutMs: 3_600_000 }],
    ["sizes", ["--max-body", "1048576"], { maxBody: 1048576 }],
    ["mib", ["--max-body", "2MiB"], { maxBody: 2 * 1048576 }],
    ["stateless", ["--stateless"], { stateless: true }],
    ["guards", [
      "--allowed-host",
      "proxy.example",
      "--cors-origin",
      "https://app.example",
      "--cors-origin",
      "*",
    ], { allowedHosts: ["proxy.example"], corsOrigins: ["https://app.example", "*"] }],
    ["debug", ["--debug"], { logLevel: "debug" }],
    ["quiet", ["--quiet"], { logLevel: "silent" }],
    ["silent", ["--silent"], { logLevel: "silent" }],
    ["log level", ["--log-level", "warn"], { logLevel: "warn" }],
    ["api key flag", ["--api-key", "s3cret"], { apiKey: "s3cret" }],
    ["cwd", ["--cwd", "/tmp", "--", "ls"], { cwd: "/tmp", command: { command: "ls", args: [] } }],
  ];
  for (const [name, args, expected] of cases) {
    await t.step(name, () => {
      const parsed = serve(args);
      for (const [key, value] of Object.entries(expected)) {
        assert.deepEqual(parsed[key as keyof ServeOptions], value, key);
      }
    });
  }
});

Deno.test("cli: MCP_PROXY_API_KEY is the fallback for --api-key", () => {
  const env = envOf({ MCP_PROXY_API_KEY: "from-env" });
  assert.equal(serve([], env).apiKey, "from-env");
  assert.equal(serve(["--api-key", "flag"], env).apiKey, "flag");
});

Deno.test("cli: usage errors name the bad token and the fix", async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [["frobnicate"], /unknown command "frobnicate"; the commands are serve and connect/],
    [["--frob"], /unknown flag "--frob" before the command/],
    [["serve", "--frob"], /unknown flag "--frob" for serve; run mcp-proxy serve --help/],
    [["serve", "-x"], /unknown flag "-x" for serve/],
    [["serve", "--port"], /--port needs a value \(<port>\)/],
    [["serve", "--port", "99999"], /--port must be 0-65535 \(got "99999"\)/],
    [["serve", "--port", "http"], /--port must be 0-65535 \(got "http"\)/],
    [["serve", "--port", "-1"], /--port must be 0-65535 \(got "-1"\)/],
    [["serve", "--stateless=yes"], /--stateless is a switch and takes no value/],
    [["serve", "--env", "NOEQUALS"], /--env must be KEY=VALUE \(got "NOEQUALS"\)/],
    [["serve", "--env", "=x"], /--env must be KEY=VALUE \(got "=x"\)/],
    [
      ["serve", "--session-timeout", "soon"],
      /--session-timeout must be a duration like 30s.*"soon"/,
    ],
    [["serve", "--max-body", "lots"], /--max-body must be a size like 4mb.*"lots"/],
    [["serve", "--max-body", "0"], /--max-body must be a size/],
    [
      ["serve", "--log-level", "loud"],
      /--log-level must be one of error, warn, info, debug \(got "loud"\)/,
    ],
    [
      ["serve", "--cors-origin", "app.example"],
      /--cors-origin must be an origin like https:\/\/app.example.com or \*/,
    ],
    [["serve", "--cors-origin", "https://a.example/path"], /--cors-origin must be an origin/],
    [["serve", "--api-key", " "], /--api-key must not be empty/],
    [["serve", "--host", ""], /--host must not be empty/],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" "), () => {
      assert.throws(() => parseCli(args, noEnv), (error: unknown) => {
        assert.ok(error instanceof UsageError, `expected a UsageError, got ${error}`);
        assert.match(error.message, message);
        return true;
      });
    });
  }
});

Deno.test("cli: --help and --version print to stdout and exit 0", async () => {
  for (const args of [[], ["--help"], ["-h"], ["help"]]) {
    const result = await runCli(args);
    assert.equal(result.code, 0, args.join(" "));
    assert.match(result.stdout, /^mcp-proxy: bridge Model Context Protocol transports/);
    assert.equal(result.stderr, "");
  }
  const serveHelp = await runCli(["serve", "--help"]);
  assert.equal(serveHelp.code, 0);
  assert.match(serveHelp.stdout, /^Usage: mcp-proxy serve \[flags\]/);
  assert.match(serveHelp.stdout, /--session-timeout <duration>/);
  for (const args of [["--version"], ["-V"]]) {
    const version = await runCli(args);
    assert.equal(version.code, 0);
    assert.equal(version.stdout, `mcp-proxy ${config.version}\n`);
  }
});

Deno.test("cli: usage errors go to stderr, one line, exit 2; nothing on stdout", async () => {
  for (
    const args of [["nope"], ["serve", "--nope"], ["serve", "--port", "70000"], ["connect", "x"]]
  ) {
    const result = await runCli(args);
    assert.equal(result.code, 2, args.join(" "));
    assert.equal(result.stdout, "");
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    assert.match(result.stderr, /^\[mcp-proxy\] error: /);
  }
});

Deno.test("cli: a runtime failure (port in use) is one clear line and exit 1", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = String((listener.addr as Deno.NetAddr).port);
  const result = await runCli(["serve", "--port", port]);
  assert.equal(result.code, 1);
  assert.equal(result.stdout, "");
  assert.match(
    result.stderr,
    new RegExp(
      `error: cannot listen on 127.0.0.1:${port}: the port is in use; choose another with --port`,
    ),
  );
  assert.ok(!result.stderr.includes("    at "), "no stack trace");
});

Deno.test("cli: a missing permission names the flag to add", async () => {
  const result = await runCli(["serve", "--port", "0"], { flags: ["--no-prompt", "--allow-run"] });
  assert.equal(result.code, 1);
  assert.match(
    result.stderr,
    /^\[mcp-proxy\] error: missing permission: mcp-proxy needs net access to "127.0.0.1:0"; run again with --allow-net=127.0.0.1:0\n$/,
  );
  const run = await runCli(["serve", "--port", "0", "--", "some-server", "--stdio"], {
    flags: ["--no-prompt", "--allow-net", "--allow-run=node"],
  });
  assert.equal(run.code, 1);
  assert.match(
    run.stderr,
    /^\[mcp-proxy\] error: missing permission: mcp-proxy needs to run "some-server"; run again with --allow-run=some-server\n$/,
  );
});

Deno.test("cli: serve runs under narrowed permissions", async () => {
  // Listening on one address and running one program is all serve needs; no prompt, no -A.
  const command = fixtureCommand("faulty_stdio.ts");
  await using proxy = await startServe([], command, {
    cliFlags: ["--no-prompt", "--allow-net=127.0.0.1", `--allow-run=${command[0]}`],
  });
  await using client = await connectHttp(proxy.mcpUrl);
  assert.equal(
    textOf(await client.callTool({ name: "echo", arguments: { text: "narrow" } })),
    "narrow",
  );
});

Deno.test("cli: MCP_PROXY_API_KEY that cannot be read is a warning, never silently open", async () => {
  await using proxy = await startServe([], undefined, {
    cliFlags: ["--no-prompt", "--allow-net=127.0.0.1"],
    env: { MCP_PROXY_API_KEY: "set-but-unreadable" },
  });
  await proxy.waitForLine(
    /warn: MCP_PROXY_API_KEY cannot be read without --allow-env=MCP_PROXY_API_KEY, so no API key is enforced/,
  );
});

Deno.test("cli: connect and serve <url> parse the remote flags", async (t) => {
  const env = envOf({ TOKEN: "s3cr3t", TEAM: "blue" });
  const connect = (args: string[]) => {
    const parsed = parseCli(["connect", ...args], env);
    assert.equal(parsed.mode, "connect");
    return parsed as ConnectOptions;
  };
  await t.step("defaults", () => {
    const { remote, tools } = connect(["https://mcp.example.com/mcp"]);
    assert.equal(remote.url.href, "https://mcp.example.com/mcp");
    assert.equal(remote.strategy, "http-first");
    assert.equal(remote.timeoutMs, 60_000);
    assert.equal(remote.connectTimeoutMs, 10_000);
    assert.equal(remote.enableProxy, false);
    assert.deepEqual(remote.headers, []);
    assert.deepEqual(tools, { allow: [], ignore: [] });
  });
  await t.step("flags before and after the URL", () => {
    const { remote, tools } = connect([
      "--transport",
      "sse-only",
      "https://mcp.example.com/sse",
      "--header",
      "Authorization: Bearer ${TOKEN}",
      "--header=X-Team:${TEAM}-${TEAM}",
      "--timeout",
      "2m",
      "--connect-timeout=500ms",
      "--enable-proxy",
      "--ignore-tool",
      "delete_*",
      "--allow-tool",
      "get_?",
    ]);
    assert.equal(remote.strategy, "sse-only");
    assert.deepEqual(remote.headers, [["Authorization", "Bearer s3cr3t"], ["X-Team", "blue-blue"]]);
    assert.equal(remote.timeoutMs, 120_000);
    assert.equal(remote.connectTimeoutMs, 500);
    assert.equal(remote.enableProxy, true);
    assert.deepEqual(tools, { allow: ["get_?"], ignore: ["delete_*"] });
  });
  await t.step("a flag given twice: the last value, or every value of a list", () => {
    const { remote } = connect([
      "https://mcp.example.com/mcp",
      "--timeout=1s",
      "--timeout",
      "2m",
      "--header",
      "A: x=y",
      "--header=B: =",
    ]);
    assert.equal(remote.timeoutMs, 120_000);
    assert.deepEqual(remote.headers, [["A", "x=y"], ["B", "="]]);
  });
  await t.step("plain HTTP: allowed for loopback, else only with --allow-http", () => {
    assert.equal(connect(["http://localhost:3000/mcp"]).remote.url.port, "3000");
    assert.equal(connect(["http://127.0.0.1:3000/mcp"]).remote.url.hostname, "127.0.0.1");
    assert.equal(connect(["http://[::1]:3000/mcp"]).remote.url.hostname, "[::1]");
    assert.equal(connect(["http://mcp.lan/mcp", "--allow-http"]).remote.url.protocol, "http:");
  });
  await t.step("serve <url> takes them too, flags on either side", () => {
    const parsed = serve(
      ["--port", "0", "https://mcp.example.com/mcp", "--header", "X: ${TEAM}"],
      env,
    );
    assert.equal(parsed.remote?.url.href, "https://mcp.example.com/mcp");
    assert.deepEqual(parsed.remote?.headers, [["X", "blue"]]);
    assert.equal(parsed.command, undefined);
  });
});

Deno.test("cli: remote usage errors name the culprit", async (t) => {
  const env = envOf({ TOKEN: "x" });
  const cases: Array<[string[], RegExp]> = [
    [["connect"], /connect needs the server's URL/],
    [
      ["connect", "https://a.example/mcp", "https://b.example/mcp"],
      /connect takes one URL \(got also "https:\/\/b\.example\/mcp"\)/,
    ],
    [
      ["connect", "mcp.example.com"],
      /the server URL is not a valid URL \(got "mcp\.example\.com"\)/,
    ],
    [
      ["connect", "ftp://mcp.example.com/"],
      /the server URL must be https:\/\/ \(got "ftp:\/\/mcp\.example\.com\/"\)/,
    ],
    [
      ["connect", "http://mcp.example.com/mcp"],
      /must be https:\/\/ \(got "http:\/\/mcp\.example\.com\/mcp"\); pass --allow-http/,
    ],
    [["connect", "https://user:pw@mcp.example.com/"], /must not carry a user or password/],
    [
      ["connect", "https://x.example/", "--transport", "websocket"],
      /--transport must be one of http-first, sse-first, http-only, sse-only \(got "websocket"\)/,
    ],
    [
      ["connect", "https://x.example/", "--header", "NoColonHere"],
      /--header must be "Name: value" with a name of letters, digits and -_\.; got "NoColonHere" \(value not shown\)/,
    ],
    [
      ["connect", "https://x.example/", "--header", "Bad Name: v"],
      /--header must be "Name: value"/,
    ],
    [
      ["connect", "https://x.example/", "--header", "Content-Type: text/plain"],
      /--header "Content-Type" is reserved: mcp-proxy sets it itself/,
    ],
    [
      ["connect", "https://x.example/", "--header", "mcp-session-id: abc"],
      /--header "mcp-session-id" is reserved/,
    ],
    [["connect", "https://x.example/", "--header", "Host: evil"], /--header "Host" is reserved/],
    [
      ["connect", "https://x.example/", "--header", "X: ${MISSING_VAR}"],
      /--header "X" uses \$\{MISSING_VAR\}, but MISSING_VAR is not set/,
    ],
    [["connect", "https://x.example/", "--timeout", "soon"], /--timeout must be a duration/],
    [["connect", "https://x.example/", "--ignore-tool", ""], /--ignore-tool must not be empty/],
    [["connect", "https://x.example/", "--port", "1"], /unknown flag "--port" for connect/],
    [
      ["serve", "--header", "X: y", "--", "cmd"],
      /--header only applies when serve's upstream is a URL/,
    ],
    [
      ["serve", "--transport", "sse-only"],
      /--transport only applies when serve's upstream is a URL/,
    ],
    [
      ["serve", "https://x.example/", "--cwd", "/tmp"],
      /--cwd only applies when serve's upstream is a command/,
    ],
    [["serve", "https://x.example/", "extra"], /serve takes one URL \(got also "extra"\)/],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" "), () => {
      assert.throws(() => parseCli(args, env), (error: unknown) => {
        assert.ok(error instanceof UsageError, `expected a UsageError, got ${error}`);
        assert.match(error.message, message);
        return true;
      });
    });
  }
});

Deno.test("cli: a malformed --header never shows its value", () => {
  for (const spec of ["X API Key: sk-live-supersecret", "X-Api-Key sk-live-supersecret"]) {
    assert.throws(
      () => parseCli(["connect", "https://x.example/", "--header", spec], noEnv),
      (e) => {
        assert.ok(e instanceof UsageError);
        assert.doesNotMatch(e.message, /supersecret/);
        assert.match(e.message, /value not shown/);
        return true;
      },
    );
  }
});

Deno.test("cli: a reserved header or a missing variable exits 2 before connecting", async () => {
  for (
    const [args, message] of [
      [["--header", "Accept: */*"], /--header "Accept" is reserved/],
      [["--header", "Authorization: Bearer ${MCP_TEST_UNSET}"], /MCP_TEST_UNSET is not set/],
    ] as const
  ) {
    const result = await runCli(["connect", "https://mcp.example.com/mcp", ...args]);
    assert.equal(result.code, 2);
    assert.equal(result.stdout, "");
    assert.match(result.stderr, message);
  }
  const narrowed = await runCli(
    ["connect", "https://mcp.example.com/mcp", "--header", "Authorization: Bearer ${TOKEN}"],
    { flags: ["--no-prompt", "--allow-net=mcp.example.com"] },
  );
  assert.equal(narrowed.code, 1);
  assert.match(
    narrowed.stderr,
    /missing permission: \$\{TOKEN\} is used; run again with --allow-env=TOKEN/,
  );
});

Deno.test("cli: connect under a narrowed --allow-env warns that proxy variables stay active", async () => {
  const result = await runCli(["connect", "https://mcp.example.com/mcp"], {
    flags: ["--no-prompt", "--allow-net=mcp.example.com", "--allow-env=TOKEN"],
    stdin: "",
  });
  assert.equal(result.code, 0);
  assert.match(
    result.stderr,
    /warn: cannot clear HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, http_proxy, https_proxy, all_proxy without --allow-env for them.*pass --enable-proxy to use it on purpose/,
  );
  const enabled = await runCli(["connect", "https://mcp.example.com/mcp", "--enable-proxy"], {
    flags: ["--no-prompt", "--allow-net=mcp.example.com", "--allow-env=TOKEN"],
    stdin: "",
  });
  assert.doesNotMatch(enabled.stderr, /cannot clear/);
});
