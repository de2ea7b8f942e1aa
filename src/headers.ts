// --header parsing: "Name: value" or "Name:value", ${VAR} interpolation from the environment, and
// the headers we refuse because the transport owns them. Values are registered as secrets.

import { UsageError } from "./errors.ts";

/** Headers the transport sets itself; a user value would break framing, sessions or routing. */
export const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  "host",
  "content-length",
  "content-type",
  "accept",
  "connection",
  "upgrade",
  "keep-alive",
  "transfer-encoding",
  "te",
  "trailer",
  "proxy-connection",
  "mcp-session-id",
  "mcp-protocol-version",
  "last-event-id",
  "mcp-method",
  "mcp-name",
]);

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const VARIABLE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

export interface HeaderRead {
  /** The variable's value; undefined when unset. Throws when it may not be read. */
  (name: string): string | undefined;
}

/** What an HTTP field value may hold (RFC 9110): tab, visible ASCII, space and Latin-1. */
export const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Parses every --header into a list of [name, value] pairs (repeats kept, in order). A missing
 * ${VAR} and a reserved or malformed name are usage errors naming the culprit.
 */
export function parseHeaders(specs: readonly string[], env: HeaderRead): Array<[string, string]> {
  return specs.map((spec) => {
    const colon = spec.indexOf(":");
    const name = colon === -1 ? "" : spec.slice(0, colon).trim();
    if (!TOKEN.test(name)) {
      // Show the name part only: what follows may be a secret.
      const shown = (colon === -1 ? spec.split(/\s/)[0]! : name).slice(0, 40);
      throw new UsageError(
        `--header must be "Name: value" with a name of letters, digits and -_.; got "${shown}" ` +
          "(value not shown)",
      );
    }
    if (RESERVED_HEADERS.has(name.toLowerCase())) {
      throw new UsageError(
        `--header "${name}" is reserved: mcp-proxy sets it itself; remove that --header`,
      );
    }
    const value = spec.slice(colon + 1).trim().replace(VARIABLE, (_, variable: string) => {
      const found = env(variable);
      if (found === undefined) {
        throw new UsageError(
          `--header "${name}" uses \${${variable}}, but ${variable} is not set; set it or change the header`,
        );
      }
      return found;
    });
    if (/[\r\n\0]/.test(value)) {
      throw new UsageError(`--header "${name}" has a line break or NUL in its value`);
    }
    if (!FIELD_VALUE.test(value)) {
      throw new UsageError(
        `--header "${name}" has a control character or a character outside Latin-1 in its ` +
          "value; a header cannot carry it",
      );
    }
    return [name, value] as [string, string];
  });
}
