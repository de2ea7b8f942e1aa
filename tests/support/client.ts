// Real MCP SDK clients connected to a URL over Streamable HTTP or SSE, disposable with `await using`.

import { runFlags } from "../../src/permissions.ts";
import { pumpLines } from "../../src/lines.ts";
import { MAIN } from "./cli.ts";
import {
  Client,
  SSEClientTransport,
  StdioClientTransport,
  StreamableHTTPClientTransport,
} from "./sdk.ts";

export type ClientOptions = {
  capabilities?: ConstructorParameters<typeof Client>[1] extends infer O
    ? O extends { capabilities?: infer C } ? C : never
    : never;
  headers?: Record<string, string>;
};

export type TestClient = Client & AsyncDisposable;

function disposable(client: Client): TestClient {
  return Object.assign(client, {
    [Symbol.asyncDispose]: async () => {
      await client.close().catch(() => {});
    },
  });
}

/** Connects (initialize + initialized) over Streamable HTTP. */
export async function connectHttp(url: URL, options: ClientOptions = {}): Promise<TestClient> {
  const client = new Client({ name: "mcp-proxy-test", version: "1.0.0" }, {
    capabilities: options.capabilities ?? {},
  });
  const transport = new StreamableHTTPClientTransport(url, {
    requestInit: { headers: options.headers ?? {} },
  });
  await client.connect(transport);
  return disposable(client);
}

/** Connects over legacy SSE. */
export async function connectSse(url: URL, options: ClientOptions = {}): Promise<TestClient> {
  const client = new Client({ name: "mcp-proxy-test", version: "1.0.0" }, {
    capabilities: options.capabilities ?? {},
  });
  const headers = options.headers ?? {};
  const transport = new SSEClientTransport(url, {
    requestInit: { headers },
    eventSourceInit: {
      fetch: (input, init) => fetch(input, { ...init, headers: { ...init?.headers, ...headers } }),
    },
  });
  await client.connect(transport);
  return disposable(client);
}

/** The text of the first content item of a tool result. */
export function textOf(result: unknown): string {
  const content = (result as { content?: Array<{ type: string; text?: string }> }).content ?? [];
  const first = content[0];
  if (!first || first.type !== "text" || first.text === undefined) {
    throw new Error(`expected text content, got ${JSON.stringify(result)}`);
  }
  return first.text;
}

/** Ends a Streamable HTTP session with DELETE, as a well-behaved client does, then closes. */
export async function endSession(client: Client): Promise<void> {
  const transport = client.transport;
  if (transport instanceof StreamableHTTPClientTransport) await transport.terminateSession();
  await client.close();
}

/** A client that spawned `mcp-proxy connect`; `stderr` collects what the proxy logged. */
export type StdioTestClient = TestClient & { stderr: string[]; stdio: StdioClientTransport };

/**
 * Spawns `mcp-proxy connect <args>` under the build's permission flags as the SDK client's stdio
 * server, and connects (initialize + initialized).
 */
export async function connectStdio(
  args: readonly string[],
  options: ClientOptions & { env?: Record<string, string>; cliFlags?: readonly string[] } = {},
): Promise<StdioTestClient> {
  const transport = new StdioClientTransport({
    command: Deno.execPath(),
    args: ["run", "--quiet", ...(options.cliFlags ?? runFlags()), MAIN, "connect", ...args],
    env: options.env,
    stderr: "pipe",
  });
  const stderr: string[] = [];
  const client = new Client({ name: "mcp-proxy-test", version: "1.0.0" }, {
    capabilities: options.capabilities ?? {},
  });
  const collecting = transport.stderr;
  if (collecting) {
    void pumpLines(readable(collecting), (line) => stderr.push(line)).catch(() => {});
  }
  await client.connect(transport);
  return Object.assign(disposable(client), { stderr, stdio: transport });
}

/** A Node stream as a web ReadableStream of bytes. */
function readable(stream: NonNullable<StdioClientTransport["stderr"]>): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      stream.on("data", (chunk: Uint8Array | string) => {
        controller.enqueue(typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk);
      });
      stream.on("end", () => controller.close());
      stream.on("error", (error: Error) => controller.error(error));
    },
  });
}

/** The headers of a Streamable HTTP POST made by hand. */
export const POST_HEADERS = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
} as const;

/** An initialize request's JSON, for tests that speak the protocol by hand. */
export function initializeJson(protocolVersion = "2025-11-25", id: number | string = 1): string {
  return JSON.stringify({
    jsonrpc: "2.0",
    id,
    method: "initialize",
    params: { protocolVersion, capabilities: {}, clientInfo: { name: "t", version: "1" } },
  });
}
