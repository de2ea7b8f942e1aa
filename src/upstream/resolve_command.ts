// Finds the program a stdio server's `command` names, as a Windows shell would: `npx` is npx.cmd
// and `uvx` is uvx.exe (PATH x PATHEXT), and a .cmd/.bat runs through cmd.exe with its arguments
// quoted for it. Elsewhere the command is left to the OS. Pure: platform, env and files injected.

/** What resolution may look at; `hostSystem()` is the real one. */
export interface CommandSystem {
  /** Deno.build.os: only "windows" resolves anything. */
  platform: string;
  /** An environment variable (PATH, PATHEXT, ComSpec) as the child will see it. */
  env: (name: string) => string | undefined;
  /** Whether a regular file exists at `path`. */
  exists: (path: string) => boolean;
}

/** What to hand to Deno.Command. */
export interface ResolvedCommand {
  command: string;
  args: string[];
  /** True when `args` are already quoted for cmd.exe (Deno.Command's windowsRawArguments). */
  windowsRawArguments: boolean;
}

/** Windows' own default when PATHEXT is unset. */
const DEFAULT_PATHEXT = ".COM;.EXE;.BAT;.CMD";
/** Characters cmd.exe treats specially, escaped with ^ (as cross-spawn does). */
const CMD_META = /([()\][%!^"`<>&|;, *?])/g;

/**
 * Resolves `command` for spawning. On Windows a bare name is looked up in PATH with each PATHEXT
 * extension (never the extension-less file: npm's `npx` next to npx.cmd is a sh script), a path
 * gets the extensions tried too, and a .cmd or .bat becomes `cmd.exe /d /s /c "<quoted line>"`.
 * Not found: returned unchanged, so spawning reports "command not found" as before.
 */
export function resolveCommand(
  command: string,
  args: readonly string[],
  system: CommandSystem = hostSystem(),
): ResolvedCommand {
  const unchanged = { command, args: [...args], windowsRawArguments: false };
  if (system.platform !== "windows") return unchanged;
  const name = command.length > 1 && command.startsWith('"') && command.endsWith('"')
    ? command.slice(1, -1)
    : command;
  const file = findProgram(name, system);
  if (file === undefined) return name === command ? unchanged : { ...unchanged, command: name };
  if (!/\.(cmd|bat)$/i.test(file)) {
    return { command: file, args: [...args], windowsRawArguments: false };
  }
  return viaCmd(file, args, system);
}

/** The running process's view: Deno.build.os, its environment with `overrides`, and stat. */
export function hostSystem(overrides: Record<string, string> = {}): CommandSystem {
  return {
    platform: Deno.build.os,
    env: (name) => {
      const key = Object.keys(overrides).find((k) => k.toUpperCase() === name.toUpperCase());
      if (key !== undefined) return overrides[key];
      try {
        return Deno.env.get(name);
      } catch {
        return undefined; // No --allow-env for it: as if unset.
      }
    },
    exists: (path) => {
      try {
        return Deno.statSync(path).isFile;
      } catch {
        return false;
      }
    },
  };
}

/** The file `name` runs, or undefined. */
function findProgram(name: string, system: CommandSystem): string | undefined {
  if (name === "") return undefined;
  const extensions = (system.env("PATHEXT") || DEFAULT_PATHEXT).split(";")
    .map((ext) => ext.trim().toLowerCase())
    .filter((ext) => ext.startsWith("."));
  if (/[\\/]/.test(name)) return withExtension(name, extensions, system);
  for (const entry of (system.env("PATH") ?? "").split(";")) {
    const dir = entry.trim().replace(/^"(.*)"$/, "$1");
    if (dir === "") continue;
    const found = withExtension(`${dir.replace(/[\\/]+$/, "")}\\${name}`, extensions, system);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** `base` itself when it has an executable extension, else `base` plus the first that exists. */
function withExtension(
  base: string,
  extensions: readonly string[],
  system: CommandSystem,
): string | undefined {
  const ext = /\.[^.\\/]+$/.exec(base)?.[0]?.toLowerCase();
  if (ext !== undefined && extensions.includes(ext)) return system.exists(base) ? base : undefined;
  for (const candidate of extensions) {
    if (system.exists(base + candidate)) return base + candidate;
  }
  return undefined;
}

/**
 * `cmd.exe /d /s /c "<script> <args>"`: /d skips AutoRun, /s keeps the outer quotes' contents
 * verbatim; each argument is quoted for the C runtime, then every cmd metacharacter is escaped
 * with ^ (twice for node_modules/.bin shims, whose %* is parsed once more). A line break cannot
 * be passed through cmd.exe at all (it ends the command), so such an argument is refused.
 */
function viaCmd(file: string, args: readonly string[], system: CommandSystem): ResolvedCommand {
  const bad = args.find((arg) => /[\r\n\0]/.test(arg));
  if (bad !== undefined) {
    throw new TypeError(
      `cannot pass an argument with a line break or NUL to ${file} (a batch file runs in cmd.exe)`,
    );
  }
  const twice = /node_modules[\\/]\.bin[\\/][^\\/]+\.cmd$/i.test(file);
  const script = file.replace(/\//g, "\\").replace(CMD_META, "^$1");
  const line = [script, ...args.map((arg) => escapeArgument(arg, twice))].join(" ");
  return {
    command: system.env("ComSpec") || "cmd.exe",
    args: ["/d", "/s", "/c", `"${line}"`],
    windowsRawArguments: true,
  };
}

/** One argument: quoted as the Microsoft C runtime parses it, then escaped for cmd.exe. */
export function escapeArgument(arg: string, twice = false): string {
  let quoted = '"';
  let backslashes = 0;
  for (const char of arg) {
    if (char === "\\") {
      backslashes++;
      continue;
    }
    // Backslashes before a quote are doubled and the quote escaped; elsewhere they are literal.
    quoted += char === '"'
      ? "\\".repeat(backslashes * 2 + 1) + '"'
      : "\\".repeat(backslashes) + char;
    backslashes = 0;
  }
  quoted += "\\".repeat(backslashes * 2) + '"';
  const once = quoted.replace(CMD_META, "^$1");
  return twice ? once.replace(CMD_META, "^$1") : once;
}
