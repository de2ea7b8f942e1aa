// Leveled logger: the only writer to stderr. stdout is reserved for protocol frames (connect mode)
// and for --help/--version. Every line passes through redaction so secrets never reach a log.

export type LogLevel = "error" | "warn" | "info" | "debug";
export const LOG_LEVELS: readonly LogLevel[] = ["error", "warn", "info", "debug"];

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };
const encoder = new TextEncoder();
const secrets = new Set<string>();
let threshold = RANK.info;
let silent = false;

/** Sets the most verbose level that is written; `silent` drops everything, errors included. */
export function setLogLevel(level: LogLevel | "silent"): void {
  silent = level === "silent";
  if (level !== "silent") threshold = RANK[level];
}

/** True when a message at `level` would be written (lets callers skip building costly messages). */
export function enabled(level: LogLevel): boolean {
  return !silent && RANK[level] <= threshold;
}

/** Registers a value (token, API key, header value) that must never appear in a log line. */
export function addSecret(value: string): void {
  if (value.length >= 4) secrets.add(value);
}

/** "Bearer x" / "Basic x" as an Authorization value, not "mcp:basic mcp:write" in a scope. */
const BEARER = /(?<![\w:])(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi;
const KEYED =
  /("?(?:access_token|refresh_token|id_token|client_secret|api[_-]?key|password|code_verifier)"?\s*[:=]\s*"?)[^"&\s,}]+/gi;

/** Replaces registered secrets and anything shaped like a credential with `[redacted]`. */
export function redact(text: string): string {
  let out = text.replace(BEARER, "$1 [redacted]").replace(KEYED, "$1[redacted]");
  for (const secret of secrets) {
    if (out.includes(secret)) out = out.split(secret).join("[redacted]");
  }
  return out;
}

function write(line: string): void {
  const bytes = encoder.encode(redact(line) + "\n");
  let offset = 0;
  try {
    while (offset < bytes.length) offset += Deno.stderr.writeSync(bytes.subarray(offset));
  } catch {
    // stderr closed (the parent went away): nothing left to tell anyone.
  }
}

function emit(level: LogLevel, message: string): void {
  if (!enabled(level)) return;
  write(level === "info" ? `[mcp-proxy] ${message}` : `[mcp-proxy] ${level}: ${message}`);
}

export const log = {
  error: (message: string): void => emit("error", message),
  warn: (message: string): void => emit("warn", message),
  info: (message: string): void => emit("info", message),
  debug: (message: string): void => emit("debug", message),
  /** Relays one line of a child's stderr with its own prefix, at info level. */
  child: (prefix: string, line: string): void => {
    if (enabled("info")) write(`[${prefix}] ${line}`);
  },
};
