// The live client sessions of one HTTP server (Streamable HTTP and SSE alike): lookup by id,
// activity tracking, and the reaper that ends sessions idle past --session-timeout.

import { log } from "../log.ts";

export interface Session {
  readonly id: string;
  readonly kind: "streamable" | "sse";
  /** Route prefix the session belongs to ("" for the top-level routes). */
  readonly route: string;
  /** True while a request the client still waits for is in flight: not idle, whatever the clock. */
  busy(): boolean;
  /** Ends the session and its upstream; requests in flight are answered with `reason`. */
  close(reason: string): Promise<void>;
}

interface Entry {
  session: Session;
  lastActivity: number;
}

export class SessionRegistry {
  #entries = new Map<string, Entry>();
  #timeoutMs: number;
  #timer?: ReturnType<typeof setInterval>;
  /** --max-sessions; 0 for no limit. */
  readonly maxSessions: number;
  /** Sessions being opened (their initialize in flight): they count against the limit. */
  #opening = 0;
  /** After closeAll (shutdown): a session that finishes opening now is closed at once. */
  #closed = false;

  /** `timeoutMs` 0 disables idle reaping; `maxSessions` 0 sets no limit. */
  constructor(timeoutMs: number, maxSessions = 0) {
    this.maxSessions = maxSessions;
    this.#timeoutMs = timeoutMs;
    if (timeoutMs > 0) {
      const every = Math.min(Math.max(Math.floor(timeoutMs / 4), 50), 30_000);
      this.#timer = setInterval(() => this.#reap(), every);
      Deno.unrefTimer(this.#timer as unknown as number);
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Holds a place for a session about to open; undefined when --max-sessions are open (or
   * opening) already. Call the returned function once the session is added or has failed.
   */
  reserve(): (() => void) | undefined {
    if (this.maxSessions > 0 && this.#entries.size + this.#opening >= this.maxSessions) {
      return undefined;
    }
    this.#opening++;
    let released = false;
    return () => {
      if (!released) this.#opening--;
      released = true;
    };
  }

  /** Adds an opened session; during shutdown it is closed instead (no child outlives us). */
  add(session: Session): void {
    if (this.#closed) {
      session.close("the server is shutting down").catch(() => {});
      return;
    }
    this.#entries.set(session.id, { session, lastActivity: performance.now() });
  }

  get(id: string): Session | undefined {
    return this.#entries.get(id)?.session;
  }

  /** Marks a session active now; idle time is measured from the last call. */
  touch(id: string): void {
    const entry = this.#entries.get(id);
    if (entry) entry.lastActivity = performance.now();
  }

  /** Forgets a session (it closed itself). */
  delete(id: string): void {
    this.#entries.delete(id);
  }

  count(kind: Session["kind"]): number {
    let n = 0;
    for (const { session } of this.#entries.values()) if (session.kind === kind) n++;
    return n;
  }

  /** Closes the sessions of one route (a server removed from the gateway). */
  async closeRoute(route: string, reason: string): Promise<void> {
    const closing: Session[] = [];
    for (const [id, { session }] of this.#entries) {
      if (session.route !== route) continue;
      this.#entries.delete(id);
      closing.push(session);
    }
    await Promise.allSettled(closing.map((session) => session.close(reason)));
  }

  /** Closes every session and stops the reaper. */
  async closeAll(reason: string): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    const sessions = [...this.#entries.values()].map(({ session }) => session);
    this.#entries.clear();
    await Promise.allSettled(sessions.map((session) => session.close(reason)));
  }

  #reap(): void {
    const now = performance.now();
    for (const [id, entry] of this.#entries) {
      if (now - entry.lastActivity < this.#timeoutMs) continue;
      if (entry.session.busy()) {
        entry.lastActivity = now;
        continue;
      }
      this.#entries.delete(id);
      const idle = `idle for ${Math.round((now - entry.lastActivity) / 1000)}s`;
      log.info(`session ${id} ${idle}; closed`);
      entry.session.close(`the session ended after being ${idle}`).catch(() => {});
    }
  }
}
