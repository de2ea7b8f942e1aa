// The checker the gateway config is validated with: it collects problems as lines naming the JSON
// path, the bad value (secrets shown as "***") and what is expected, and does ${VAR} interpolation.

import { UsageError } from "../errors.ts";
import type { JsonPath } from "./jsonc.ts";

/** The environment as the config sees it: a variable's value, or undefined when unset. */
export type ConfigEnv = (name: string) => string | undefined;

/** Everything wrong with a config; the message's first line is "<source>: N problems". */
export class ConfigError extends UsageError {
  readonly source: string;
  readonly problems: string[];
  constructor(source: string, problems: string[]) {
    const count = problems.length === 1 ? "1 problem" : `${problems.length} problems`;
    super([`${source}: ${count}`, ...problems].join("\n"));
    this.name = "ConfigError";
    this.source = source;
    this.problems = problems;
  }
}

const VARIABLE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
const SHOWN_MAX = 60;

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `mcpServers.fs.args[0]`; keys other than letters, digits, _ $ - as `["my.server"]`. */
export function formatPath(path: JsonPath): string {
  if (path.length === 0) return "the top level";
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (/^[A-Za-z0-9_$-]+$/.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/** Header values, env values and authTokens: never printed. */
function isSecret(path: JsonPath): boolean {
  const [top, , key, sub] = path;
  if (top === "mcpServers") {
    return key === "headers" || key === "env" || (key === "options" && sub === "authTokens");
  }
  return top === "mcpProxy" && path[1] === "options" && key === "authTokens";
}

/** The value as JSON, at most 60 characters; `"***"` for secrets. */
export function show(path: JsonPath, value: unknown): string {
  if (value === undefined) return "nothing";
  if (isSecret(path)) return '"***"';
  const json = JSON.stringify(value) ?? String(value);
  return json.length > SHOWN_MAX ? `${json.slice(0, SHOWN_MAX - 3)}...` : json;
}

/** Collects problems; each getter returns undefined (and records why) when the value is wrong. */
export class Checker {
  readonly problems: string[] = [];
  #env: ConfigEnv;

  constructor(env: ConfigEnv) {
    this.#env = env;
  }

  /** A problem line: "<path>: <message>". */
  at(path: JsonPath, message: string): void {
    this.problems.push(`${formatPath(path)}: ${message}`);
  }

  expected(path: JsonPath, what: string, value: unknown): void {
    this.at(path, `expected ${what}, got ${show(path, value)}`);
  }

  missing(path: JsonPath, what: string): void {
    this.at(path, `missing; expected ${what}`);
  }

  /** An object whose keys are all in `known`; each other key is a problem. */
  object(
    path: JsonPath,
    value: unknown,
    known: readonly string[],
    what = "an object",
  ): Record<string, unknown> | undefined {
    if (!isObject(value)) {
      this.expected(path, what, value);
      return undefined;
    }
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) this.problems.push(unknownKey(path, key, known));
    }
    return value;
  }

  /** A string, ${VAR} interpolated; undefined when it is not a string or a variable is unset. */
  string(path: JsonPath, value: unknown, what = "a string"): string | undefined {
    if (typeof value !== "string") {
      this.expected(path, what, value);
      return undefined;
    }
    let unset = false;
    const seen = new Set<string>();
    const out = value.replace(VARIABLE, (_, name: string) => {
      const found = this.#env(name);
      if (found !== undefined) return found;
      unset = true;
      if (!seen.has(name)) this.at(path, `uses \${${name}}, but ${name} is not set`);
      seen.add(name);
      return "";
    });
    return unset ? undefined : out;
  }

  /** A string that is not empty or blank after interpolation. */
  text(path: JsonPath, value: unknown, what = "a non-empty string"): string | undefined {
    const out = this.string(path, value, what);
    if (out !== undefined && out.trim() === "") {
      this.expected(path, what, out);
      return undefined;
    }
    return out;
  }

  boolean(path: JsonPath, value: unknown): boolean | undefined {
    if (typeof value === "boolean") return value;
    this.expected(path, "true or false", value);
    return undefined;
  }

  /** An array whose items pass `item`; undefined when it or any item is wrong. */
  array<T>(
    path: JsonPath,
    value: unknown,
    what: string,
    item: (path: JsonPath, value: unknown) => T | undefined,
  ): T[] | undefined {
    if (!Array.isArray(value)) {
      this.expected(path, what, value);
      return undefined;
    }
    const out = value.map((entry, index) => item([...path, index], entry));
    return out.every((entry) => entry !== undefined) ? out as T[] : undefined;
  }

  /** An object of strings (env, headers); `check` sees each key and value, false when bad. */
  strings(
    path: JsonPath,
    value: unknown,
    what: string,
    check: (path: JsonPath, key: string, value: string | undefined) => boolean,
  ): Record<string, string> | undefined {
    if (!isObject(value)) {
      this.expected(path, what, value);
      return undefined;
    }
    const out: Record<string, string> = {};
    let ok = true;
    for (const name of Object.keys(value)) {
      const entry = this.string([...path, name], value[name]);
      if (!check([...path, name], name, entry) || entry === undefined) ok = false;
      else define(out, name, entry);
    }
    return ok ? out : undefined;
  }
}

/** Sets a key without the __proto__ setter getting in the way. */
export function define<T>(object: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(object, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

function unknownKey(path: JsonPath, key: string, known: readonly string[]): string {
  const where = `unknown key ${JSON.stringify(key)} at ${formatPath(path)}`;
  const near = known.find((candidate) => similar(candidate, key));
  return near
    ? `${where}; did you mean ${JSON.stringify(near)}?`
    : `${where}; expected one of: ${known.join(", ")}`;
}

/** Same ignoring case, or at most two edits apart (for keys of four or more characters). */
function similar(a: string, b: string): boolean {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  if (x === y) return true;
  if (Math.min(x.length, y.length) < 4 || Math.abs(x.length - y.length) > 2) return false;
  let previous = Array.from({ length: y.length + 1 }, (_, i) => i);
  for (let i = 1; i <= x.length; i++) {
    const row = [i];
    for (let j = 1; j <= y.length; j++) {
      const cost = x[i - 1] === y[j - 1] ? 0 : 1;
      row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + cost);
    }
    previous = row;
  }
  return previous[y.length]! <= 2;
}
