// `deno task bench --client node`: the benchmark's client in a Node process, the runtime of
// Claude Desktop, Cursor and most hosts. tests/fixtures/bench_client_node.ts is bundled for Node
// (deno bundle, SDK included, under .bench/) and runs under Node's permission model (read its own
// file, spawn stdio servers); the bench sends it one request per line and it runs the timed loops
// itself, so no figure includes this relay.

import { fileURLToPath } from "node:url";
import { pumpLines } from "../src/lines.ts";
import type {
  ClientSide,
  Endpoint,
  HostRequest,
  HostResponse,
} from "../tests/fixtures/bench_client.ts";

const ROOT_DIR = fileURLToPath(new URL("../", import.meta.url));
const ENTRY = fileURLToPath(new URL("../tests/fixtures/bench_client_node.ts", import.meta.url));

/** Node's permission flags for the host: version 23.5 made the model stable (`--permission`). */
function permissionFlags(version: string, bundle: string): string[] {
  const [major = 0, minor = 0] = version.replace(/^v/, "").split(".").map(Number);
  const flag = major > 23 || (major === 23 && minor >= 5)
    ? "--permission"
    : major >= 20
    ? "--experimental-permission"
    : undefined;
  if (!flag) throw new Error(`--client node needs Node 20 or later (found ${version})`);
  return [flag, `--allow-fs-read=${bundle}`, "--allow-child-process"];
}

/** The client side in a Node process: every ClientSide call is one request over its stdin. */
export class NodeClientSide implements ClientSide {
  readonly #process: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  readonly #stderr: string[] = [];
  readonly #encoder = new TextEncoder();
  #next = 1;
  #exited: string | undefined;

  private constructor(command: string[]) {
    this.#process = new Deno.Command(command[0]!, {
      args: command.slice(1),
      cwd: ROOT_DIR,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.#process.stdin.getWriter();
    void pumpLines(this.#process.stdout, (line) => this.#answer(line)).catch(() => {});
    void pumpLines(this.#process.stderr, (line) => {
      this.#stderr.push(line);
      if (this.#stderr.length > 20) this.#stderr.shift();
    }).catch(() => {});
    void this.#process.status.then((status) => {
      this.#exited = `the Node client exited (code ${status.code}):\n${this.#stderr.join("\n")}`;
      for (const { reject } of this.#pending.values()) reject(new Error(this.#exited));
      this.#pending.clear();
    });
  }

  /** Bundles the Node client into `dir` and starts it under `node` (version `version`). */
  static async start(dir: string, version: string): Promise<NodeClientSide> {
    const bundle = `${dir}/bench_client_node.mjs`;
    const built = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform", "node", "-o", bundle, ENTRY],
      cwd: ROOT_DIR,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!built.success) {
      const why = new TextDecoder().decode(built.stderr).trim();
      throw new Error(`--client node: deno bundle failed:\n${why}`);
    }
    return new NodeClientSide(["node", ...permissionFlags(version, bundle), bundle]);
  }

  #answer(line: string): void {
    const response = JSON.parse(line) as HostResponse;
    const waiter = this.#pending.get(response.id);
    this.#pending.delete(response.id);
    if ("error" in response) waiter?.reject(new Error(response.error));
    else waiter?.resolve(response.result);
  }

  async #call<T>(method: HostRequest["method"], ...params: unknown[]): Promise<T> {
    if (this.#exited) throw new Error(this.#exited);
    const id = this.#next++;
    const answer = new Promise<unknown>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
    });
    const request: HostRequest = { id, method, params };
    await this.#writer.write(this.#encoder.encode(JSON.stringify(request) + "\n"));
    return await answer as T;
  }

  runtime(): Promise<string> {
    return this.#call("runtime");
  }
  open(endpoint: Endpoint): Promise<{ session: number; pid?: number }> {
    return this.#call("open", endpoint);
  }
  tools(session: number): Promise<string[]> {
    return this.#call("tools", session);
  }
  echoTimes(session: number, count: number): Promise<number[]> {
    return this.#call("echoTimes", session, count);
  }
  throughput(session: number, concurrency: number, total: number): Promise<number> {
    return this.#call("throughput", session, concurrency, total);
  }
  large(session: number, kind: "result" | "request", repeat: number): Promise<number[]> {
    return this.#call("large", session, kind, repeat);
  }
  sessions(endpoint: Endpoint, count: number, calls: number): Promise<number> {
    return this.#call("sessions", endpoint, count, calls);
  }
  close(session: number): Promise<void> {
    return this.#call("close", session);
  }

  /** Ends the Node client (its stdin), then waits for it to exit. */
  async stop(): Promise<void> {
    await this.#writer.close().catch(() => {});
    const timer = setTimeout(() => this.#process.kill("SIGKILL"), 5_000);
    await this.#process.status;
    clearTimeout(timer);
  }
}
