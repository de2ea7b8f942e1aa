// Allow/ignore glob rules for names (tools now; prompts and resources in the gateway): `*` matches
// any run of characters, `?` one character, everything else itself.

export interface FilterRules {
  /** When non-empty, only names matching one of these are visible. */
  allow: readonly string[];
  /** Names matching one of these are hidden (applied after allow). */
  ignore: readonly string[];
}

export class NameFilter {
  #allow: RegExp[];
  #ignore: RegExp[];

  constructor(rules: FilterRules) {
    this.#allow = rules.allow.map(globToRegExp);
    this.#ignore = rules.ignore.map(globToRegExp);
  }

  /** False when no rule is set: nothing to filter. */
  get active(): boolean {
    return this.#allow.length > 0 || this.#ignore.length > 0;
  }

  allows(name: string): boolean {
    if (this.#allow.length > 0 && !this.#allow.some((re) => re.test(name))) return false;
    return !this.#ignore.some((re) => re.test(name));
  }
}

/** `*` -> any run, `?` -> one character; the rest literal; anchored at both ends. */
export function globToRegExp(glob: string): RegExp {
  let source = "";
  for (const char of glob) {
    if (char === "*") source += "[\\s\\S]*";
    else if (char === "?") source += "[\\s\\S]";
    else source += char.replace(/[.+^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`^${source}$`, "u");
}
