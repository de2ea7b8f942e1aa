// Bounded in-memory event store for Streamable HTTP resumability: a client reconnecting with
// Last-Event-ID gets the events it missed on that stream, as long as they are still held.

import type { EventStore } from "../sdk.ts";
import { type JSONRPCMessage, jsonSize } from "../jsonrpc.ts";

interface StoredEvent {
  seq: number;
  streamId: string;
  /** An empty object for a priming event. */
  message: JSONRPCMessage;
  size: number;
}

export interface EventStoreLimits {
  /** Most events held; the oldest are dropped first. */
  maxEvents: number;
  /** Most serialized size held (in UTF-16 code units, about bytes); the oldest are dropped first. */
  maxBytes: number;
}

export const DEFAULT_EVENT_LIMITS: EventStoreLimits = {
  maxEvents: 1000,
  maxBytes: 16 * 1024 * 1024,
};

/** Event ids are `<streamId>:<sequence>`, so a stream is known even after its events are dropped. */
export class BoundedEventStore implements EventStore {
  #events: StoredEvent[] = [];
  #head = 0;
  #bytes = 0;
  #seq = 0;
  #limits: EventStoreLimits;
  /**
   * Per stream: how many of its events are held, and the newest of them dropped so far. A stream
   * whose events are all dropped stays (a tombstone: a client that saw its last event may still
   * resume it, with nothing to replay), up to maxEvents tombstones, the oldest forgotten first.
   */
  #streams = new Map<string, { held: number; dropped: number }>();
  #tombstones: string[] = [];

  constructor(limits: EventStoreLimits = DEFAULT_EVENT_LIMITS) {
    this.#limits = limits;
  }

  /** Events currently held (for tests and health). */
  get size(): number {
    return this.#events.length - this.#head;
  }

  storeEvent(streamId: string, message: JSONRPCMessage): Promise<string> {
    return Promise.resolve(this.append(streamId, message, jsonSize(message)));
  }

  /** Holds `message` (whose JSON is `size` long) as the next event of `streamId`; its event id. */
  append(streamId: string, message: JSONRPCMessage | Record<never, never>, size: number): string {
    const seq = ++this.#seq;
    this.#events.push({ seq, streamId, message: message as JSONRPCMessage, size });
    this.#bytes += size;
    const stream = this.#streams.get(streamId);
    if (stream) stream.held++;
    // A stream seen anew (or again, its tombstone forgotten): nothing before this event is held.
    else this.#streams.set(streamId, { held: 1, dropped: seq - 1 });
    while (
      this.size > 1 &&
      (this.size > this.#limits.maxEvents || this.#bytes > this.#limits.maxBytes)
    ) {
      this.#drop(this.#events[this.#head++]!);
    }
    if (this.#head > 1024 && this.#head * 2 > this.#events.length) {
      this.#events = this.#events.slice(this.#head);
      this.#head = 0;
    }
    return `${streamId}:${seq}`;
  }

  /**
   * True when every event after `eventId` on its stream is still held, so a replay has no gap.
   * (Deliberately not the SDK's optional getStreamIdForEventId: with it, a client resuming before
   * the server has noticed its old connection drop gets 409; without it, the resume replaces the
   * stale stream.)
   */
  knows(eventId: string): boolean {
    const last = parse(eventId);
    const stream = last && this.#streams.get(last.streamId);
    return stream !== undefined && stream.dropped <= last!.seq;
  }

  #drop(event: StoredEvent): void {
    this.#bytes -= event.size;
    const stream = this.#streams.get(event.streamId)!;
    stream.dropped = event.seq;
    if (--stream.held > 0) return;
    this.#tombstones.push(event.streamId);
    while (this.#tombstones.length > this.#limits.maxEvents) {
      const oldest = this.#tombstones.shift()!;
      if (this.#streams.get(oldest)?.held === 0) this.#streams.delete(oldest);
    }
  }

  async replayEventsAfter(
    lastEventId: string,
    { send }: { send: (eventId: string, message: JSONRPCMessage) => Promise<void> },
  ): Promise<string> {
    const { streamId, missed } = this.after(lastEventId);
    for (const [id, message] of missed) await send(id, message);
    return streamId;
  }

  /** The stream `lastEventId` belongs to, and its events held after that one. */
  after(lastEventId: string): { streamId: string; missed: Array<[string, JSONRPCMessage]> } {
    const last = parse(lastEventId);
    if (!last) return { streamId: "", missed: [] };
    const missed: Array<[string, JSONRPCMessage]> = [];
    for (let i = this.#head; i < this.#events.length; i++) {
      const event = this.#events[i]!;
      if (event.streamId !== last.streamId || event.seq <= last.seq) continue;
      // The priming event (an empty message) only carries an id; it is not replayed.
      if (Object.keys(event.message).length === 0) continue;
      missed.push([`${event.streamId}:${event.seq}`, event.message]);
    }
    return { streamId: last.streamId, missed };
  }
}

function parse(eventId: string): { streamId: string; seq: number } | undefined {
  const colon = eventId.lastIndexOf(":");
  if (colon <= 0) return undefined;
  const seq = Number(eventId.slice(colon + 1));
  if (!Number.isSafeInteger(seq) || seq < 0) return undefined;
  return { streamId: eventId.slice(0, colon), seq };
}
