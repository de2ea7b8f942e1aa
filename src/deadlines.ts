// Many things that each fall due the same time after they start (a request's --timeout, a held
// POST's 100 ms), on one timer: not a timer per thing, which lives as long as the thing does
// (at 64 calls at once through serve <url>, a few KB per call more outlived the young
// generation with a timer each; measured with --trace-gc-nvp).

export class Deadlines<K> {
  #ms: number;
  #onDue: (key: K) => void;
  /** Started keys and when each falls due, in the order started: so the soonest due first. */
  #due = new Map<K, number>();
  #timer?: ReturnType<typeof setTimeout>;

  /** `onDue(key)` is called `ms` after `key` was last started, unless it was stopped. */
  constructor(ms: number, onDue: (key: K) => void) {
    this.#ms = ms;
    this.#onDue = onDue;
  }

  /** (Re)starts `key`'s time: it falls due `ms` from now, after every key already started. */
  start(key: K): void {
    this.#due.delete(key);
    this.#due.set(key, performance.now() + this.#ms);
    if (this.#timer === undefined) this.#arm(this.#ms);
  }

  stop(key: K): void {
    this.#due.delete(key);
  }

  /** Stops every key and the timer. */
  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#due.clear();
  }

  /** Unref'd: the timer outlives the keys stopped meanwhile, and must not keep the process up. */
  #arm(ms: number): void {
    this.#timer = setTimeout(this.#fire, ms);
    Deno.unrefTimer(this.#timer);
  }

  #fire = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    for (const [key, due] of this.#due) {
      if (due > now) return this.#arm(due - now);
      this.#due.delete(key);
      // (A key started again here goes last, due later: the loop stops there.)
      this.#onDue(key);
    }
  };
}
