// How connect finds the remote's transport (--transport). Its own module, so parsing the command
// line does not load the SDK's client transports.

export type Strategy = "http-first" | "sse-first" | "http-only" | "sse-only";
export const STRATEGIES: readonly Strategy[] = ["http-first", "sse-first", "http-only", "sse-only"];
