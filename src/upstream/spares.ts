// --prewarm N: children started ahead of the sessions that will use them, so a new session does
// not wait for a server's cold start (spawn, runtime boot, imports). A spare is only spawned: its
// initialize is the client's own, sent when a session takes it.

import { formatError } from "../errors.ts";
import { log } from "../log.ts";
import type { ChildTransport, UpstreamTransport } from "./child.ts";

/** A spare that dies this soon after its start is not replaced at once (a crashing command). */
const BACKOFF_START_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;

export class SparePool {
  #open: () => ChildTransport;
  #size: number;
  #spares = new Set<ChildTransport>();
  #failures = 0;
  #timer?: ReturnType<typeof setTimeout>;
  #closed = false;

  /** Keeps `size` started children from `open` at hand. */
  constructor(open: () => ChildTransport, size: number) {
    this.#open = open;
    this.#size = size;
    this.#fill();
  }

  /** Spares ready now (for /health): not one that has exited or closed its stdout meanwhile. */
  get ready(): number {
    let ready = 0;
    for (const spare of this.#spares) if (spare.running) ready++;
    return ready;
  }

  /** A started child if one is at hand (and a replacement is started), else a new one. */
  take(): UpstreamTransport {
    for (const spare of this.#spares) {
      this.#spares.delete(spare);
      spare.onclose = undefined;
      this.#fill();
      if (spare.running) {
        this.#failures = 0;
        return spare;
      }
    }
    this.#fill();
    return this.#open();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    const spares = [...this.#spares];
    this.#spares.clear();
    await Promise.allSettled(spares.map((spare) => spare.close()));
  }

  #fill(): void {
    if (this.#closed || this.#timer !== undefined) return;
    while (this.#spares.size < this.#size) {
      const spare = this.#open();
      const started = performance.now();
      // Spawning is synchronous: a command that cannot start fails here (no pid), not later.
      void spare.start().catch((error) => log.debug(`cannot start a spare: ${formatError(error)}`));
      if (spare.pid === undefined) return this.#retryLater();
      spare.onclose = () => {
        // A spare exited before any session took it: replaced, after a while if it died young.
        this.#spares.delete(spare);
        if (performance.now() - started < BACKOFF_START_MS) return this.#retryLater();
        this.#failures = 0;
        this.#fill();
      };
      this.#spares.add(spare);
    }
  }

  #retryLater(): void {
    if (this.#closed || this.#timer !== undefined) return;
    const delay = Math.min(BACKOFF_START_MS * 2 ** this.#failures++, BACKOFF_MAX_MS);
    log.debug(`spare servers: trying again in ${delay / 1000}s`);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#fill();
    }, delay);
    Deno.unrefTimer(this.#timer);
  }
}
