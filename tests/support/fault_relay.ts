// Upstream faults on loopback: an HTTP relay in the test process in front of a real MCP server
// that answers chosen requests with an error status; a TCP relay that resets every connection
// through it at once (mid-stream for the SSE responses on them);
// the everything server over native Streamable HTTP on a port of our choosing (so it can be
// restarted in place, knowing nothing of the old sessions); and servers that never say a word.

import { fixturePath } from "./cli.ts";
import { startListening } from "./listening.ts";

/** An HTTP relay to `target` (an origin) that can fail chosen POSTs; disposable. */
export class FaultRelay implements AsyncDisposable {
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #target: string;
  #failures: Array<{ status: number; match: string; left: number }> = [];
  /** POSTs answered with an injected status. */
  failed = 0;

  constructor(target: string) {
    this.#target = target;
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (req) => this.#handle(req),
    );
  }

  /** The relay's URL for `path` of the target. */
  url(path: string): string {
    return `http://127.0.0.1:${this.#server.addr.port}${path}`;
  }

  /**
   * The next `times` POSTs whose body contains `match` are answered `status` with an empty body
   * (as a load balancer may), and not forwarded.
   */
  fail(status: number, match: string, times = 1): void {
    this.#failures.push({ status, match, left: times });
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const body = req.method === "POST" ? await req.text() : undefined;
    const failure = body === undefined
      ? undefined
      : this.#failures.find((rule) => rule.left > 0 && body.includes(rule.match));
    if (failure) {
      failure.left--;
      this.failed++;
      return new Response(null, { status: failure.status });
    }
    const headers = new Headers(req.headers);
    headers.delete("host");
    try {
      const upstream = await fetch(new URL(url.pathname + url.search, this.#target), {
        method: req.method,
        headers,
        body,
      });
      return new Response(upstream.body, { status: upstream.status, headers: upstream.headers });
    } catch {
      return new Response("Bad Gateway", { status: 502 });
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#server.shutdown();
  }
}

/** A TCP relay to `port` on 127.0.0.1 whose connections can all be reset at once; disposable. */
export class TcpRelay implements AsyncDisposable {
  readonly #listener: Deno.Listener<Deno.TcpConn, Deno.NetAddr>;
  #pairs = new Set<[Deno.TcpConn, Deno.TcpConn]>();
  readonly #accepting: Promise<void>;

  constructor(port: number) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#listener = listener;
    this.#accepting = (async () => {
      for await (const client of listener) {
        Deno.connect({ hostname: "127.0.0.1", port }).then((server) => {
          const pair: [Deno.TcpConn, Deno.TcpConn] = [client, server];
          this.#pairs.add(pair);
          const end = () => this.#close(pair);
          client.readable.pipeTo(server.writable).then(end, end);
          server.readable.pipeTo(client.writable).then(end, end);
        }, () => client.close());
      }
    })().catch(() => {});
  }

  /** The relay's URL for `path`. */
  url(path: string): string {
    return `http://127.0.0.1:${this.#listener.addr.port}${path}`;
  }

  /** Connections open now. */
  get open(): number {
    return this.#pairs.size;
  }

  /** Closes every connection through the relay, both ways, whatever is on it. */
  reset(): number {
    const pairs = [...this.#pairs];
    for (const pair of pairs) this.#close(pair);
    return pairs.length;
  }

  #close(pair: [Deno.TcpConn, Deno.TcpConn]): void {
    if (!this.#pairs.delete(pair)) return;
    for (const conn of pair) {
      try {
        conn.close();
      } catch {
        // Closed by the piping already.
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    this.reset();
    await this.#accepting;
  }
}

/** What the everything HTTP fixture reports at /admin/stats. */
export interface EverythingStats {
  sessions: number;
  initialized: number;
  deletes: number;
  gets: number;
  resumes: string[];
}

/** The everything server over native Streamable HTTP, on `port` (0: any free one). */
export interface Everything extends AsyncDisposable {
  readonly port: number;
  readonly url: string;
  stats(): Promise<EverythingStats>;
  kill(): Promise<void>;
}

export async function startEverything(port = 0): Promise<Everything> {
  const args = ["run", "--no-prompt", "--allow-net=127.0.0.1", fixturePath("everything_http.ts")];
  const { url, kill } = await startListening([...args, String(port)], "the everything fixture");
  return {
    port: Number(new URL(url).port),
    url,
    stats: async () => await (await fetch(new URL("/admin/stats", url))).json(),
    kill,
    [Symbol.asyncDispose]: kill,
  };
}

/**
 * A server that answers GET with an event stream that never carries an `endpoint` event (a
 * comment, then silence) and POST with 405. `open` counts its streams still held by a client.
 */
export function startSilentSse(): { url: string; open(): number } & AsyncDisposable {
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    if (req.method !== "GET") return new Response("Method Not Allowed", { status: 405 });
    let held!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        held = controller;
        streams.add(controller);
        controller.enqueue(new TextEncoder().encode(": no endpoint event, ever\n\n"));
      },
      cancel: () => void streams.delete(held),
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/sse`,
    open: () => streams.size,
    [Symbol.asyncDispose]: async () => {
      for (const controller of streams) {
        try {
          controller.close();
        } catch {
          // Cancelled meanwhile.
        }
      }
      streams.clear();
      await server.shutdown();
    },
  };
}
