// JSON with comments (// and /* */) and trailing commas, as editors and MCP clients write config
// files: a small parser that reports line and column, keeps key order and notes duplicate keys.

export type JsonPath = Array<string | number>;

export interface JsoncResult {
  value: unknown;
  /** Keys that appear twice in one object (the last one wins), with the object's path. */
  duplicates: Array<{ path: JsonPath; key: string }>;
}

/** A syntax error; `message` is one line with the line, column and an excerpt of that line. */
export class JsoncError extends Error {
  readonly line: number;
  readonly column: number;
  constructor(detail: string, text: string, offset: number) {
    const before = text.slice(0, offset);
    const line = before.split("\n").length;
    const start = before.lastIndexOf("\n") + 1;
    const column = offset - start + 1;
    const end = text.indexOf("\n", offset);
    const lineText = text.slice(start, end === -1 ? undefined : end);
    const tidy = (part: string) => part.replace(/\s+/g, " ");
    const excerpt = (tidy(lineText.slice(Math.max(0, column - 1 - EXCERPT), column - 1)) + "-->" +
      tidy(lineText.slice(column - 1, column - 1 + EXCERPT))).trim();
    super(
      `invalid JSON at line ${line}, column ${column}: ${detail}` +
        (excerpt === "-->" ? "" : `; near: ${excerpt}`),
    );
    this.name = "JsoncError";
    this.line = line;
    this.column = column;
  }
}

const EXCERPT = 24;
const MAX_DEPTH = 64;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPES: Record<string, string> = {
  '"': '"',
  "\\": "\\",
  "/": "/",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
};
const order = new WeakMap<object, string[]>();

/** Parses JSONC text; throws JsoncError on a syntax error. */
export function parseJsonc(text: string): JsoncResult {
  const parser = new Parser(text.startsWith("\uFEFF") ? text.slice(1) : text);
  return parser.document();
}

/** An object's keys in file order (plain Object.keys puts integer-like keys first). */
export function keysInOrder(object: Record<string, unknown>): string[] {
  return order.get(object) ?? Object.keys(object);
}

class Parser {
  #text: string;
  #at = 0;
  #duplicates: JsoncResult["duplicates"] = [];

  constructor(text: string) {
    this.#text = text;
  }

  document(): JsoncResult {
    this.#skip();
    if (this.#at >= this.#text.length) this.#fail("the file is empty; expected a JSON object");
    const value = this.#value([]);
    this.#skip();
    if (this.#at < this.#text.length) this.#fail("unexpected text after the end of the JSON value");
    return { value, duplicates: this.#duplicates };
  }

  #fail(detail: string, at = this.#at): never {
    throw new JsoncError(detail, this.#text, at);
  }

  /** Skips whitespace and comments. */
  #skip(): void {
    const text = this.#text;
    while (this.#at < text.length) {
      const char = text[this.#at]!;
      if (char === " " || char === "\t" || char === "\n" || char === "\r") {
        this.#at++;
      } else if (text.startsWith("//", this.#at)) {
        const end = text.indexOf("\n", this.#at);
        this.#at = end === -1 ? text.length : end + 1;
      } else if (text.startsWith("/*", this.#at)) {
        const end = text.indexOf("*/", this.#at + 2);
        if (end === -1) this.#fail("unterminated /* comment");
        this.#at = end + 2;
      } else {
        return;
      }
    }
  }

  #value(path: JsonPath): unknown {
    if (path.length > MAX_DEPTH) this.#fail(`nested more than ${MAX_DEPTH} levels deep`);
    this.#skip();
    const char = this.#text[this.#at];
    if (char === undefined) this.#fail("unexpected end of file; expected a value");
    if (char === "{") return this.#object(path);
    if (char === "[") return this.#array(path);
    if (char === '"') return this.#string();
    for (const [word, value] of [["true", true], ["false", false], ["null", null]] as const) {
      if (this.#text.startsWith(word, this.#at)) {
        this.#at += word.length;
        return value;
      }
    }
    NUMBER.lastIndex = this.#at;
    const number = NUMBER.exec(this.#text);
    if (number) {
      this.#at += number[0].length;
      return Number(number[0]);
    }
    if (char === "'") this.#fail("strings must be in double quotes");
    this.#fail("expected a value (a string, number, object, array, true, false or null)");
  }

  #object(path: JsonPath): Record<string, unknown> {
    this.#at++;
    const object: Record<string, unknown> = {};
    const keys: string[] = [];
    order.set(object, keys);
    for (;;) {
      this.#skip();
      if (this.#text[this.#at] === "}") break;
      if (this.#text[this.#at] !== '"') this.#fail('expected a key in double quotes or "}"');
      const key = this.#string();
      this.#skip();
      if (this.#text[this.#at] !== ":") this.#fail('expected ":" after the key');
      this.#at++;
      const value = this.#value([...path, key]);
      if (Object.hasOwn(object, key)) {
        this.#duplicates.push({ path, key });
        keys.splice(keys.indexOf(key), 1);
      }
      keys.push(key);
      Object.defineProperty(object, key, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
      this.#skip();
      if (this.#text[this.#at] === ",") this.#at++;
      else if (this.#text[this.#at] !== "}") this.#fail('expected "," or "}"');
    }
    this.#at++;
    return object;
  }

  #array(path: JsonPath): unknown[] {
    this.#at++;
    const array: unknown[] = [];
    for (;;) {
      this.#skip();
      if (this.#text[this.#at] === "]") break;
      array.push(this.#value([...path, array.length]));
      this.#skip();
      if (this.#text[this.#at] === ",") this.#at++;
      else if (this.#text[this.#at] !== "]") this.#fail('expected "," or "]"');
    }
    this.#at++;
    return array;
  }

  #string(): string {
    const text = this.#text;
    const start = this.#at;
    let out = "";
    for (let i = start + 1; i < text.length; i++) {
      const char = text[i]!;
      if (char === '"') {
        this.#at = i + 1;
        return out;
      }
      if (char < " ") {
        if (char === "\n") this.#fail("unterminated string", start);
        this.#fail("a control character in a string (write it as an escape like \\t)", i);
      }
      if (char !== "\\") {
        out += char;
        continue;
      }
      const escape = text[++i] ?? "";
      if (escape === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) {
        out += String.fromCharCode(parseInt(text.slice(i + 1, i + 5), 16));
        i += 4;
      } else if (Object.hasOwn(ESCAPES, escape)) {
        out += ESCAPES[escape];
      } else {
        this.#fail(`invalid escape "\\${escape}" in a string`, i - 1);
      }
    }
    this.#fail("unterminated string", start);
  }
}
