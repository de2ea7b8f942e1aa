// Windows command resolution (src/upstream/resolve_command.ts), unit-tested on any OS with a fake
// file system: npx -> npx.cmd through cmd.exe, uvx -> uvx.exe, PATH and PATHEXT order, paths with
// spaces, quoting for cmd.exe; and, on Windows only, a real .cmd in a folder with spaces.

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type CommandSystem,
  escapeArgument,
  hostSystem,
  resolveCommand,
} from "../src/upstream/resolve_command.ts";

const COMSPEC = "C:\\Windows\\system32\\cmd.exe";
const NODEJS = "C:\\Program Files\\nodejs";

/** A Windows machine with exactly `files` (matched case-insensitively) and this environment. */
function windows(files: string[], env: Record<string, string | undefined> = {}): CommandSystem & {
  looked: string[];
} {
  // Windows paths: either slash, any case.
  const key = (path: string) => path.replace(/\//g, "\\").toLowerCase();
  const known = new Set(files.map(key));
  const looked: string[] = [];
  const vars: Record<string, string | undefined> = {
    PATH: `C:\\Windows\\system32;${NODEJS}\\;C:\\Users\\me\\.local\\bin`,
    PATHEXT: ".COM;.EXE;.BAT;.CMD;.VBS;.JS",
    ComSpec: COMSPEC,
    ...env,
  };
  return {
    platform: "windows",
    env: (name) => vars[name],
    exists: (path) => {
      looked.push(path);
      return known.has(key(path));
    },
    looked,
  };
}

Deno.test("resolve command: elsewhere than Windows the command is left to the OS", () => {
  const untouchable: CommandSystem = {
    platform: "linux",
    env: () => assert.fail("no environment lookups off Windows"),
    exists: () => assert.fail("no file lookups off Windows"),
  };
  for (const platform of ["linux", "darwin"]) {
    const resolved = resolveCommand("npx", ["-y", "a b"], { ...untouchable, platform });
    assert.deepEqual(resolved, { command: "npx", args: ["-y", "a b"], windowsRawArguments: false });
  }
  assert.equal(hostSystem().platform, Deno.build.os);
});

Deno.test("resolve command: npx is npm's npx.cmd, run through cmd.exe, never the sh script", () => {
  const system = windows([`${NODEJS}\\npx`, `${NODEJS}\\npx.cmd`]);
  const resolved = resolveCommand("npx", [
    "-y",
    "@modelcontextprotocol/server-filesystem",
    "C:\\My Documents\\notes",
  ], system);
  assert.deepEqual(resolved, {
    command: COMSPEC,
    args: [
      "/d",
      "/s",
      "/c",
      '"C:\\Program^ Files\\nodejs\\npx.cmd ^"-y^" ^"@modelcontextprotocol/server-filesystem^" ' +
      '^"C:\\My^ Documents\\notes^""',
    ],
    windowsRawArguments: true,
  });
  assert.ok(!system.looked.some((path) => /\\npx$/i.test(path)), "the extension-less file");
});

Deno.test("resolve command: uvx is uvx.exe, spawned directly with its arguments untouched", () => {
  const system = windows(["C:\\Users\\me\\.local\\bin\\uvx.exe"]);
  assert.deepEqual(resolveCommand("uvx", ["mcp-server-git", "--repository", "C:\\a b"], system), {
    command: "C:\\Users\\me\\.local\\bin\\uvx.exe",
    args: ["mcp-server-git", "--repository", "C:\\a b"],
    windowsRawArguments: false,
  });
});

Deno.test("resolve command: PATH order first, then PATHEXT order within a folder", async (t) => {
  const cases: Array<[string, string[], Record<string, string | undefined>, string]> = [
    [
      "the first folder wins",
      ["C:\\a\\tool.cmd", "C:\\b\\tool.exe"],
      { PATH: "C:\\a;C:\\b" },
      COMSPEC,
    ],
    ["within a folder, .EXE before .CMD", ["C:\\a\\tool.cmd", "C:\\a\\tool.exe"], {
      PATH: "C:\\a",
    }, "C:\\a\\tool.exe"],
    ["PATHEXT decides the order", ["C:\\a\\tool.cmd", "C:\\a\\tool.exe"], {
      PATH: "C:\\a",
      PATHEXT: ".CMD;.EXE",
    }, COMSPEC],
    ["PATHEXT unset: Windows' default", ["C:\\a\\tool.bat"], {
      PATH: "C:\\a",
      PATHEXT: undefined,
    }, COMSPEC],
    ["PATHEXT without .CMD finds no .cmd", ["C:\\a\\tool.cmd"], {
      PATH: "C:\\a",
      PATHEXT: ".EXE",
    }, "tool"],
    ["quoted and empty PATH entries, trailing slashes", [`${NODEJS}\\tool.exe`], {
      PATH: `;;"${NODEJS}\\";C:\\x/`,
    }, `${NODEJS}\\tool.exe`],
    [
      "ComSpec unset: cmd.exe",
      ["C:\\a\\tool.cmd"],
      { PATH: "C:\\a", ComSpec: undefined },
      "cmd.exe",
    ],
    ["not found: unchanged (spawning says command not found)", [], {}, "tool"],
    ["no PATH at all: unchanged", ["C:\\a\\tool.exe"], { PATH: undefined }, "tool"],
  ];
  for (const [name, files, env, expected] of cases) {
    await t.step(
      name,
      () => assert.equal(resolveCommand("tool", [], windows(files, env)).command, expected),
    );
  }
});

Deno.test("resolve command: explicit extensions and paths, with spaces, slashes and quotes", async (t) => {
  const cases: Array<[string, string, string[], string, string[]]> = [
    ["a name with its extension", "node.exe", [`${NODEJS}\\node.exe`], `${NODEJS}\\node.exe`, [
      "x",
    ]],
    [
      "a path without its extension",
      "C:\\Program Files\\My Server\\server",
      ["C:\\Program Files\\My Server\\server.exe"],
      "C:\\Program Files\\My Server\\server.exe",
      ["x"],
    ],
    [
      "a .bat in Program Files (x86)",
      "C:\\Program Files (x86)\\Tool\\run.bat",
      ["C:\\Program Files (x86)\\Tool\\run.bat"],
      COMSPEC,
      ["/d", "/s", "/c", '"C:\\Program^ Files^ ^(x86^)\\Tool\\run.bat ^"x^""'],
    ],
    [
      "forward slashes, upper-case extension",
      "C:/tools/RUN.CMD",
      ["C:\\tools\\run.cmd"],
      COMSPEC,
      ["/d", "/s", "/c", '"C:\\tools\\RUN.CMD ^"x^""'],
    ],
    [
      "the whole command in quotes, as people paste it",
      `"${NODEJS}\\npx.cmd"`,
      [`${NODEJS}\\npx.cmd`],
      COMSPEC,
      ["/d", "/s", "/c", '"C:\\Program^ Files\\nodejs\\npx.cmd ^"x^""'],
    ],
    [
      "a name with a dot that is not an extension",
      "mcp.server",
      ["C:\\Users\\me\\.local\\bin\\mcp.server.exe"],
      "C:\\Users\\me\\.local\\bin\\mcp.server.exe",
      ["x"],
    ],
    ["a relative path", ".\\bin\\srv", [".\\bin\\srv.exe"], ".\\bin\\srv.exe", ["x"]],
    [
      "a node_modules\\.bin shim: metacharacters escaped twice",
      "C:\\app\\node_modules\\.bin\\server.cmd",
      ["C:\\app\\node_modules\\.bin\\server.cmd"],
      COMSPEC,
      ["/d", "/s", "/c", '"C:\\app\\node_modules\\.bin\\server.cmd ^^^"x^^^""'],
    ],
  ];
  for (const [name, command, files, expected, args] of cases) {
    await t.step(name, () => {
      const resolved = resolveCommand(command, ["x"], windows(files));
      assert.equal(resolved.command, expected);
      assert.deepEqual(resolved.args, args);
      assert.equal(resolved.windowsRawArguments, expected === COMSPEC);
    });
  }
});

Deno.test("resolve command: arguments are quoted for the C runtime, then escaped for cmd.exe", async (t) => {
  const cases: Array<[string, string]> = [
    ["", '^"^"'],
    ["plain", '^"plain^"'],
    ["a b", '^"a^ b^"'],
    ['say "hi"', '^"say^ \\^"hi\\^"^"'],
    ["C:\\dir\\", '^"C:\\dir\\\\^"'],
    ["C:\\dir\\\\", '^"C:\\dir\\\\\\\\^"'],
    ['a\\"b', '^"a\\\\\\^"b^"'],
    ["a\\b", '^"a\\b^"'],
    ["%PATH%", '^"^%PATH^%^"'],
    ["&calc", '^"^&calc^"'],
    ["a|b>c<d^e", '^"a^|b^>c^<d^^e^"'],
    ["!x!", '^"^!x^!^"'],
    ["(x);y,z", '^"^(x^)^;y^,z^"'],
    ["tab\there", '^"tab\there^"'],
    ["\u00e9", '^"\u00e9^"'],
  ];
  for (const [arg, expected] of cases) {
    await t.step(JSON.stringify(arg), () => assert.equal(escapeArgument(arg), expected));
  }
  await t.step("twice: every ^ and metacharacter escaped again", () => {
    assert.equal(escapeArgument("a&b", true), '^^^"a^^^&b^^^"');
  });
  await t.step("a line break or NUL cannot go through cmd.exe: refused, not truncated", () => {
    const system = windows([`${NODEJS}\\npx.cmd`]);
    for (const arg of ["a\nb", "a\r\nrd /s /q C:\\", "a\0b"]) {
      assert.throws(() => resolveCommand("npx", ["-y", arg], system), /line break or NUL/);
    }
    // Not through cmd.exe: passed as is (CreateProcess carries them).
    const exe = windows(["C:\\Users\\me\\.local\\bin\\uvx.exe"]);
    assert.deepEqual(resolveCommand("uvx", ["a\nb"], exe).args, ["a\nb"]);
  });
});

Deno.test("resolve command: the child's own PATH (--env, config env) overrides ours", () => {
  const system = hostSystem({ Path: "C:\\only\\here", pathext: ".EXE" });
  assert.equal(system.env("PATH"), "C:\\only\\here");
  assert.equal(system.env("PATHEXT"), ".EXE");
  const here = fileOf(import.meta.url);
  assert.equal(system.exists(here), true);
  assert.equal(system.exists(join(here, "..")), false, "a folder is not a program");
  assert.equal(system.exists(`${here}.missing`), false);
});

function fileOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname).replace(/^\/([A-Za-z]:)/, "$1");
}

Deno.test({
  name:
    "resolve command (Windows): a .cmd on PATH in a folder with spaces gets its arguments intact",
  ignore: Deno.build.os !== "windows",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "mcp proxy (x86) " });
    try {
      // The script prints the arguments it received as JSON, through Deno itself.
      await Deno.writeTextFile(
        join(dir, "echo-args.cmd"),
        `@"${Deno.execPath()}" eval "console.log(JSON.stringify(Deno.args))" %*\r\n`,
      );
      const args = [
        "-y",
        "a b",
        'say "hi"',
        "C:\\dir\\",
        "%PATH%",
        "&whoami",
        "a|b",
        "^",
        "!x!",
        "",
      ];
      const path = `${dir};${Deno.env.get("PATH") ?? ""}`;
      const resolved = resolveCommand("echo-args", args, hostSystem({ PATH: path }));
      assert.equal(resolved.windowsRawArguments, true);
      const output = await new Deno.Command(resolved.command, {
        args: resolved.args,
        windowsRawArguments: resolved.windowsRawArguments,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, stderr);
      assert.deepEqual(JSON.parse(new TextDecoder().decode(output.stdout)), args);
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
