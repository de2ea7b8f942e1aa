// The gateway config's validation: every rule as a table of invalid configs with the exact
// problem lines, and malformed JSON reported as one problem with line, column and excerpt.

import assert from "node:assert/strict";
import { config, parse, problemsOf } from "./support/gateway_config.ts";

Deno.test("gateway config: every rule, with its exact message", async (t) => {
  const ok = { command: "srv" };
  const cases: Array<[string, string, string[]]> = [
    ["not an object", "[1, 2]", [
      'the top level: expected an object like {"mcpServers": {...}}, got [1,2]',
    ]],
    ["no mcpServers", "{}", [
      'mcpServers: missing; expected an object of servers like {"name": {"command": "..."}}',
    ]],
    ["mcpServers not an object", '{"mcpServers": ["a"]}', [
      'mcpServers: expected an object of servers like {"name": {"command": "..."}}, got ["a"]',
    ]],
    ["no servers", config({}), ["mcpServers: expected at least one server, got {}"]],
    [
      "unknown keys everywhere",
      JSON.stringify({
        foo: 1,
        mcpProxy: { listen: 1, merged: { routes: "" }, options: { timout: "1s", disabled: true } },
        mcpServers: {
          fs: { command: "x", foo: 1, options: { toolFilter: { mode: "allow", list: [], x: 1 } } },
        },
      }),
      [
        'unknown key "foo" at the top level; expected one of: mcpProxy, mcpServers, $schema',
        'unknown key "listen" at mcpProxy; expected one of: host, port, merged, options',
        'unknown key "routes" at mcpProxy.merged; did you mean "route"?',
        'unknown key "timout" at mcpProxy.options; did you mean "timeout"?',
        'unknown key "disabled" at mcpProxy.options; expected one of: toolFilter, authTokens, timeout, required',
        'unknown key "foo" at mcpServers.fs; expected one of: command, args, env, cwd, url, headers, transport, type, transportType, options',
        'unknown key "x" at mcpServers.fs.options.toolFilter; expected one of: mode, list',
      ],
    ],
    [
      "duplicate keys",
      '{"mcpServers": {"a": {"command": "x"}, "a": {"command": "y", "command": "z"}}}',
      [
        'duplicate key "command" at mcpServers.a; keep one',
        'duplicate key "a" at mcpServers; keep one',
      ],
    ],
    ["both command and url, or neither", config({ a: { command: "x", url: "https://x" }, b: {} }), [
      'mcpServers.a: expected exactly one of "command" (stdio) or "url" (remote), got both',
      'mcpServers.b: expected exactly one of "command" (stdio) or "url" (remote), got neither',
    ]],
    ["a server that is not an object", config({ a: "npx server" }), [
      'mcpServers.a: expected an object with "command" or "url", got "npx server"',
    ]],
    [
      "server names",
      config({ "my.server": ok, "-a": ok, health: ok, MCP: ok, ["x".repeat(65)]: ok }),
      [
        'mcpServers["my.server"]: expected a server name of 1-64 letters, digits, _ or - starting with a letter or digit (it becomes the route /<name>/mcp), got "my.server"',
        'mcpServers.-a: expected a server name of 1-64 letters, digits, _ or - starting with a letter or digit (it becomes the route /<name>/mcp), got "-a"',
        'mcpServers.health: "health" is reserved for a route (health, ping, mcp, sse, message, messages); rename it',
        'mcpServers.MCP: "MCP" is reserved for a route (health, ping, mcp, sse, message, messages); rename it',
        `mcpServers.${
          "x".repeat(65)
        }: expected a server name of 1-64 letters, digits, _ or - starting with a letter or digit (it becomes the route /<name>/mcp), got "${
          "x".repeat(60)
        }"`,
      ],
    ],
    [
      "names and the merged separator",
      config({ a__b: ok, c_: ok, "d-e": ok }, { merged: { separator: "-" } }),
      [
        'mcpServers.d-e: the name clashes with the merged separator "-" (tools would be named "d-e-<tool>"); rename it or change mcpProxy.merged.separator',
      ],
    ],
    ["the default separator", config({ a__b: ok, c_: ok }), [
      'mcpServers.a__b: the name clashes with the merged separator "__" (tools would be named "a__b__<tool>"); rename it or change mcpProxy.merged.separator',
      'mcpServers.c_: the name clashes with the merged separator "__" (tools would be named "c___<tool>"); rename it or change mcpProxy.merged.separator',
    ]],
    [
      "merged settings",
      config({ all: ok }, { merged: { enabled: "yes", route: "all", name: " ", separator: "::" } }),
      [
        'mcpProxy.merged.enabled: expected true or false, got "yes"',
        'mcpProxy.merged.name: expected a non-empty string, got " "',
        'mcpProxy.merged.route: expected "" (/mcp and /sse) or "/" and a name, like "/all", got "all"',
        'mcpProxy.merged.separator: expected 1-4 characters of _ . -, got "::"',
      ],
    ],
    [
      "merged route collisions",
      config({ all: ok }, { merged: { route: "/all", separator: "_____" } }),
      [
        'mcpProxy.merged.separator: expected 1-4 characters of _ . -, got "_____"',
        'mcpProxy.merged.route: "/all" is also the route of server "all"; choose another route',
      ],
    ],
    ["a reserved merged route", config({ a: ok }, { merged: { route: "/sse" } }), [
      'mcpProxy.merged.route: "/sse" is reserved; choose another route',
    ]],
    ["host and port", config({ a: ok }, { host: "", port: 99999 }), [
      'mcpProxy.host: expected a host name or address, got ""',
      "mcpProxy.port: expected an integer 0-65535, got 99999",
    ]],
    ["port forms", config({ a: ok }, { port: "80a" }), [
      'mcpProxy.port: expected an integer 0-65535, got "80a"',
    ]],
    ["fractional port", config({ a: ok }, { port: 1.5 }), [
      "mcpProxy.port: expected an integer 0-65535, got 1.5",
    ]],
    [
      "stdio fields",
      config({ a: { command: "", args: "x y", env: { A: 1, "B=C": "v" }, cwd: 3 } }),
      [
        'mcpServers.a.command: expected a command, got ""',
        'mcpServers.a.args: expected an array of strings, got "x y"',
        'mcpServers.a.env.A: expected a string, got "***"',
        'mcpServers.a.env["B=C"]: expected an environment variable name, without "="',
        "mcpServers.a.cwd: expected a directory, got 3",
      ],
    ],
    [
      "args items and env shape",
      config({ a: { command: "x", args: ["ok", 1, null], env: ["K=v"] } }),
      [
        "mcpServers.a.args[1]: expected a string, got 1",
        "mcpServers.a.args[2]: expected a string, got null",
        'mcpServers.a.env: expected an object of strings, got "***"',
      ],
    ],
    [
      "remote fields on a stdio server and back",
      config({
        a: { command: "x", headers: {}, transport: "sse" },
        b: { url: "https://x.example", args: [], env: {}, cwd: "/" },
      }),
      [
        'mcpServers.a.headers: only for a remote server (with "url"), but this one has "command"',
        'mcpServers.a.transport: only for a remote server (with "url"), but this one has "command"',
        'mcpServers.b.args: only for a stdio server (with "command"), but this one has "url"',
        'mcpServers.b.env: only for a stdio server (with "command"), but this one has "url"',
        'mcpServers.b.cwd: only for a stdio server (with "command"), but this one has "url"',
      ],
    ],
    [
      "urls",
      config({
        a: { url: "ftp://x.example/mcp" },
        b: { url: "not a url" },
        c: { url: "http://x.example/mcp" },
        d: { url: "https://user:pw@x.example/mcp" },
        e: { url: 42 },
      }),
      [
        'mcpServers.a.url: expected an http(s) URL like https://host/mcp, got "ftp://x.example/mcp"',
        'mcpServers.b.url: expected an http(s) URL like https://host/mcp, got "not a url"',
        'mcpServers.c.url: expected https:// (plain http:// only to localhost, unless --allow-http), got "http://x.example/mcp"',
        'mcpServers.d.url: expected a URL without a user or password (send credentials in "headers")',
        "mcpServers.e.url: expected an http(s) URL, got 42",
      ],
    ],
    [
      "headers",
      config({
        a: {
          url: "https://x.example",
          headers: { "Bad Name": "v", Host: "h", "X-Number": 7, "X-Split": "a\r\nInjected: b" },
        },
      }),
      [
        'mcpServers.a.headers["Bad Name"]: expected a header name of letters, digits and !#$%&\'*+.^_`|~-',
        "mcpServers.a.headers.Host: the Host header is set by mcp-proxy itself; remove it",
        'mcpServers.a.headers.X-Number: expected a string, got "***"',
        "mcpServers.a.headers.X-Split: expected a value without line breaks",
      ],
    ],
    ["transport", config({ a: { url: "https://x.example", transport: "http" } }), [
      'mcpServers.a.transport: expected "streamable-http", "sse" or "auto", got "http"',
    ]],
    [
      "type and transportType",
      config({
        a: { command: "x", type: "sse" },
        b: { url: "https://x.example", type: "stdio" },
        c: { url: "https://x.example", type: "websocket" },
        d: { url: "https://x.example", type: "sse", transportType: "streamableHttp" },
        e: { url: "https://x.example", type: "sse", transport: "streamable-http" },
        f: { url: "https://x.example", transportType: "http", transport: "auto" },
      }),
      [
        'mcpServers.a.type: expected "stdio" for a server with "command", got "sse"',
        'mcpServers.b.type: expected "sse", "http" or "streamable-http" for a server with "url", got "stdio"',
        'mcpServers.c.type: expected "stdio", "sse", "http" or "streamable-http", got "websocket"',
        'mcpServers.d.transportType: expected the same as "type" ("sse"), got "streamableHttp"',
        'mcpServers.e.transport: expected "sse" to agree with "type", got "streamable-http"',
        'mcpServers.f.transport: expected "streamable-http" to agree with "transportType", got "auto"',
      ],
    ],
    [
      "options",
      config({
        a: {
          command: "x",
          options: {
            toolFilter: { mode: "deny", list: ["", 3, "ok*"] },
            authTokens: ["has space", "", "fine"],
            timeout: "soon",
            required: "yes",
            disabled: 1,
          },
        },
        b: { command: "x", options: { toolFilter: {}, authTokens: "t", timeout: -1 } },
        c: { command: "x", options: { toolFilter: ["a"], timeout: true } },
        d: { command: "x", options: "all" },
      }),
      [
        'mcpServers.a.options.toolFilter.mode: expected "allow" or "block", got "deny"',
        'mcpServers.a.options.toolFilter.list[0]: expected a non-empty glob, got ""',
        "mcpServers.a.options.toolFilter.list[1]: expected a non-empty glob, got 3",
        'mcpServers.a.options.authTokens[0]: expected a token without spaces, got "***"',
        'mcpServers.a.options.authTokens[1]: expected a token without spaces, got "***"',
        'mcpServers.a.options.timeout: expected a duration like "30s", "5m" or "500ms", or a number of seconds, got "soon"',
        'mcpServers.a.options.required: expected true or false, got "yes"',
        "mcpServers.a.options.disabled: expected true or false, got 1",
        'mcpServers.b.options.toolFilter.mode: missing; expected "allow" or "block"',
        'mcpServers.b.options.toolFilter.list: missing; expected an array of name globs like ["read_*"]',
        'mcpServers.b.options.authTokens: expected an array of tokens, got "***"',
        'mcpServers.b.options.timeout: expected a duration like "30s", "5m" or "500ms", or a number of seconds, got -1',
        'mcpServers.c.options.toolFilter: expected {"mode": "allow" or "block", "list": [...]}, got ["a"]',
        'mcpServers.c.options.timeout: expected a duration like "30s", "5m" or "500ms", or a number of seconds, got true',
        'mcpServers.d.options: expected an object, got "all"',
      ],
    ],
    [
      "default options are checked too, secrets hidden",
      config({ a: ok }, {
        options: { authTokens: [""], toolFilter: { mode: "allow", list: "x" } },
      }),
      [
        'mcpProxy.options.toolFilter.list: expected an array of name globs like ["read_*"], got "x"',
        'mcpProxy.options.authTokens[0]: expected a token without spaces, got "***"',
      ],
    ],
    [
      "required and disabled at once",
      config({ a: { command: "x", options: { required: true, disabled: true } } }),
      [
        'mcpServers.a.options: "required" and "disabled" are both true: /health would answer 503 for good',
      ],
    ],
    [
      "long values are cut at 60 characters",
      config({ a: { command: "x", cwd: ["y".repeat(80)] } }),
      [
        `mcpServers.a.cwd: expected a directory, got ["${"y".repeat(55)}...`,
      ],
    ],
  ];
  for (const [name, text, expected] of cases) {
    await t.step(name, () => assert.deepEqual(problemsOf(text), expected));
  }
});

Deno.test("gateway config: malformed JSON is one problem with line, column and excerpt", async (t) => {
  const cases: Array<[string, string, string]> = [
    [
      "empty",
      "  \n",
      "invalid JSON at line 2, column 1: the file is empty; expected a JSON object",
    ],
    [
      "missing comma",
      '{\n  "mcpServers": {\n    "a": {"command": "x"} "b": {}\n  }\n}',
      'invalid JSON at line 3, column 27: expected "," or "}"; near: "a": {"command": "x"} -->"b": {}',
    ],
    [
      "missing colon",
      '{"mcpServers" {}}',
      'invalid JSON at line 1, column 15: expected ":" after the key; near: {"mcpServers" -->{}}',
    ],
    [
      "single quotes",
      "{'mcpServers': {}}",
      `invalid JSON at line 1, column 2: expected a key in double quotes or "}"; near: {-->'mcpServers': {}}`,
    ],
    [
      "single-quoted value",
      "{\"a\": 'b'}",
      `invalid JSON at line 1, column 7: strings must be in double quotes; near: {"a": -->'b'}`,
    ],
    [
      "unterminated string",
      '{"a": "b\n}',
      'invalid JSON at line 1, column 7: unterminated string; near: {"a": -->"b',
    ],
    [
      "unterminated comment",
      '{"a": 1 /* no end',
      'invalid JSON at line 1, column 9: unterminated /* comment; near: {"a": 1 -->/* no end',
    ],
    [
      "a bare word",
      '{"a": yes}',
      'invalid JSON at line 1, column 7: expected a value (a string, number, object, array, true, false or null); near: {"a": -->yes}',
    ],
    [
      "invalid escape",
      '{"a": "\\q"}',
      'invalid JSON at line 1, column 8: invalid escape "\\q" in a string; near: {"a": "-->\\q"}',
    ],
    [
      "a tab in a string",
      '{"a": "x\ty"}',
      'invalid JSON at line 1, column 9: a control character in a string (write it as an escape like \\t); near: {"a": "x--> y"}',
    ],
    [
      "text after the value",
      "{}\n{}",
      "invalid JSON at line 2, column 1: unexpected text after the end of the JSON value; near: -->{}",
    ],
    [
      "cut short",
      '{"mcpServers": {',
      'invalid JSON at line 1, column 17: expected a key in double quotes or "}"; near: {"mcpServers": {-->',
    ],
    [
      "an array cut short",
      '{"a": [1, 2',
      'invalid JSON at line 1, column 12: expected "," or "]"; near: {"a": [1, 2-->',
    ],
  ];
  for (const [name, text, expected] of cases) {
    await t.step(name, () => assert.deepEqual(problemsOf(text), [expected]));
  }
});

Deno.test("gateway config: plain http server URLs with allowHttp, and to loopback hosts", () => {
  const servers = config({
    a: { url: "http://localhost:3000/mcp" },
    b: { url: "http://127.0.0.1/mcp" },
    c: { url: "http://[::1]:8/mcp" },
  });
  assert.equal(parse(servers).servers.length, 3);
  const parsed = parse(config({ d: { url: "http://intranet.example/mcp" } }), true);
  assert.equal(
    parsed.servers[0]?.kind === "remote" && parsed.servers[0].url,
    "http://intranet.example/mcp",
  );
});
