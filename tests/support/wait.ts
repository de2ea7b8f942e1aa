// Readiness helpers for tests: read /health, and poll a condition with real requests (never a
// fixed sleep) until it holds or a deadline passes.

/** What /health answers. */
export interface Health {
  status: string;
  mode: string;
  children: number;
  sessions: { streamable: number; sse: number };
}

/** Reads /health. */
export async function health(base: string): Promise<Health> {
  const response = await fetch(`${base}/health`);
  return await response.json();
}

/** Polls `check` until it holds (readiness, not a sleep: each poll is a real request). */
export async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
