// One error class for everything we report locally, with a stable code, plus formatting of the
// cause chain. JSON-RPC wire errors (what a client receives) are built in src/jsonrpc.ts instead.

export type ErrorCode =
  | "usage"
  | "permission"
  | "listen"
  | "spawn"
  | "upstream"
  | "timeout"
  | "internal";

/** A failure we can explain: `code` classifies it, `message` says what, the value and the fix. */
export class ProxyError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ProxyError";
    this.code = code;
  }
}

/** A bad command line: printed to stderr with a pointer to --help, exit code 2. */
export class UsageError extends ProxyError {
  constructor(message: string) {
    super("usage", message);
    this.name = "UsageError";
  }
}

/** Exit code for an error: 2 for usage errors, 1 for everything else. */
export function exitCodeFor(error: unknown): number {
  return error instanceof UsageError ? 2 : 1;
}

/**
 * Turns a permission failure from Deno into a ProxyError naming the flag to add. Deno says
 * 'Requires net access to "x", run again with the --allow-net flag'; we say what and how.
 */
export function permissionError(error: unknown): ProxyError | undefined {
  if (!(error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied)) {
    return undefined;
  }
  const text = error.message;
  const flag = /--allow-[a-z]+/.exec(text)?.[0];
  const needs = /Requires (.+?), run again/.exec(text)?.[1] ?? text;
  const target = /access to "([^"]*)"/.exec(text)?.[1];
  const grant = flag && target ? `${flag}=${target}` : flag ?? "the permission it names";
  return new ProxyError(
    "permission",
    `missing permission: mcp-proxy needs ${needs}; run again with ${grant}`,
  );
}

/** One line: the message followed by each distinct cause message, joined with ": ". */
export function formatError(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    const text = current instanceof Error ? current.message : String(current);
    if (text && !parts.some((part) => part.includes(text))) parts.push(text);
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join(": ") || "unknown error";
}
