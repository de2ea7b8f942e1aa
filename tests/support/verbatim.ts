// Requests written as a client might and JSON.stringify never would, to see whether a proxy passes
// a client's text on or serializes it again (with tests/fixtures/raw_stdio.ts, whose tool answers
// with the exact line it read).

const PAD = "x".repeat(20_000);

/**
 * A tools/call over 16 KB (so a proxy keeps its text), with spaces and a \u escape. `names` is
 * its params' name member(s) as written: `"name":"hidden", "name":"heard"` names a tool twice
 * (JSON.parse keeps the last name, a server may read the first).
 */
export function verbatimCall(id: string | number, names: string): string {
  return `{"jsonrpc":"2.0", "id":${JSON.stringify(id)}, "method":"tools/call", ` +
    `"params":{${names}, "arguments":{"text":"caf\\u00e9 ${PAD}"}}}`;
}

/** What a server reads when a proxy parses `text` and serializes it again. */
export function reserialized(text: string): string {
  return JSON.stringify(JSON.parse(text));
}
