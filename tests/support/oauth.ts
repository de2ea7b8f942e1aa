// The OAuth fixtures for end-to-end tests: the authorization server (oidc-provider), the protected
// MCP server that trusts it, the headless browser as $BROWSER, and a fresh --config-dir. Each one
// starts on 127.0.0.1:0, is ready when it prints "listening <url>", and stops when disposed.

import { join } from "node:path";
import { runFlags } from "../../src/permissions.ts";
import { fixturePath, MAIN } from "./cli.ts";
import { startListening } from "./listening.ts";
import { Client, StdioClientTransport } from "./sdk.ts";

/** What auth_server.ts's GET /admin/stats answers. */
export interface AuthStats {
  requests: Record<string, number>;
  grants: Record<string, number>;
  tokenErrors: Record<string, number>;
  authorizations: Record<string, string>[];
  tokens: Array<Record<string, unknown>>;
  registrations: Array<Record<string, unknown>>;
  live: Record<string, number>;
}

/** auth_server.ts, running. */
export interface AuthServer extends AsyncDisposable {
  issuer: string;
  stats(): Promise<AuthStats>;
  /** Authorization requests so far: how many times the browser was sent there. */
  authorizations(): Promise<number>;
  /** POST /admin/<path>?<query>. */
  admin(path: string, query?: Record<string, string | number>): Promise<unknown>;
  kill(): Promise<void>;
}

const AUTH_SERVER_FLAGS = ["run", "--no-prompt", "--allow-net=127.0.0.1", "--allow-env"];

/** Starts tests/fixtures/auth_server.ts with `flags` (see its USAGE). */
export async function startAuthServer(flags: readonly string[] = []): Promise<AuthServer> {
  const { url, kill } = await startListening(
    [...AUTH_SERVER_FLAGS, fixturePath("auth_server.ts"), ...flags],
    "auth_server.ts",
  );
  const root = new URL(url).origin;
  const stats = async () => await (await fetch(`${root}/admin/stats`)).json() as AuthStats;
  return {
    issuer: url,
    stats,
    authorizations: async () => (await stats()).requests.authorization ?? 0,
    admin: async (path, query = {}) => {
      const target = new URL(`/admin/${path}`, root);
      for (const [key, value] of Object.entries(query)) {
        target.searchParams.set(key, String(value));
      }
      const response = await fetch(target, { method: "POST" });
      const body = await response.json();
      if (!response.ok) {
        throw new Error(`POST ${target}: ${response.status} ${JSON.stringify(body)}`);
      }
      return body;
    },
    kill,
    [Symbol.asyncDispose]: kill,
  };
}

/** The "auth" part of protected_http.ts's /admin/stats. */
export interface ProtectedStats {
  challenges: number;
  invalid: number;
  forbidden: number;
  accepted: number;
  metadata: number;
  lastRejection: null | { status: number; error?: string; description: string };
  tokens: Array<{ jti?: string; sub?: string; client_id?: string; scope?: string }>;
}

/** protected_http.ts, running. */
export interface ProtectedServer extends AsyncDisposable {
  /** The MCP URL (ending in /mcp). */
  url: string;
  stats(): Promise<{ initialized: number; sessions: number; auth: ProtectedStats }>;
  /** POST /admin/<path>?<query>. */
  admin(path: string, query?: Record<string, string | number>): Promise<unknown>;
  kill(): Promise<void>;
}

/** Starts tests/fixtures/protected_http.ts guarded by `issuer`, with `flags` (see its USAGE). */
export async function startProtected(
  issuer: string,
  flags: readonly string[] = [],
): Promise<ProtectedServer> {
  const { url, kill } = await startListening(
    [
      "run",
      "--no-prompt",
      "--allow-net=127.0.0.1",
      fixturePath("protected_http.ts"),
      issuer,
      ...flags,
    ],
    "protected_http.ts",
  );
  const origin = new URL(url).origin;
  return {
    url,
    stats: async () => await (await fetch(`${origin}/admin/stats`)).json(),
    admin: async (path, query = {}) => {
      const target = new URL(`/admin/${path}`, origin);
      for (const [key, value] of Object.entries(query)) {
        target.searchParams.set(key, String(value));
      }
      const response = await fetch(target, { method: "POST" });
      const body = await response.json();
      if (!response.ok) {
        throw new Error(`POST ${target}: ${response.status} ${JSON.stringify(body)}`);
      }
      return body;
    },
    kill,
    [Symbol.asyncDispose]: kill,
  };
}

/** How the headless browser behaves (tests/fixtures/browser.ts). */
export type BrowserMode = "approve" | "deny" | "wrong-state" | "wrong-iss" | "never";

/** The environment that makes the proxy open tests/fixtures/browser.ts in `mode`. */
export function browserEnv(mode: BrowserMode = "approve"): Record<string, string> {
  const command = [
    Deno.execPath(),
    "run",
    "--no-prompt",
    "--allow-net=127.0.0.1,localhost",
    "--allow-env=BROWSER_MODE,BROWSER_LOGIN,BROWSER_DELAY_MS",
    fixturePath("browser.ts"),
  ];
  return { BROWSER: command.join(" "), BROWSER_MODE: mode };
}

/** What the proxy keeps in tokens.json. */
export interface StoredTokens {
  access_token: string;
  refresh_token?: string;
  scope?: string;
  expires_at?: number;
}

/** An authorization server, a protected server behind it and a fresh config directory. */
export interface OAuthSetup extends AsyncDisposable {
  as: AuthServer;
  server: ProtectedServer;
  /** A fresh --config-dir (not created yet: the proxy creates it). */
  configDir: string;
  /** `<server url> --config-dir <dir> ...extra`: the arguments of connect or serve. */
  args(...extra: string[]): string[];
  /** The server's folder under the config directory (the one folder in servers/). */
  serverDir(): Promise<string>;
  /** tokens.json of the server, if stored. */
  tokens(): Promise<StoredTokens | undefined>;
  /** client.json of the server, if stored. */
  client(): Promise<Record<string, string> | undefined>;
}

/** Starts an authorization server with `as` flags and a protected server with `server` flags. */
export async function startOAuth(
  options: { as?: readonly string[]; server?: readonly string[] } = {},
): Promise<OAuthSetup> {
  const as = await startAuthServer(options.as);
  let server: ProtectedServer;
  try {
    server = await startProtected(as.issuer, options.server);
  } catch (error) {
    await as.kill();
    throw error;
  }
  const temp = await Deno.makeTempDir({ prefix: "mcp-proxy-oauth-" });
  const configDir = join(temp, "config");
  const serverDir = async () => {
    const root = join(configDir, "servers");
    const names = [];
    for await (const entry of Deno.readDir(root)) if (entry.isDirectory) names.push(entry.name);
    if (names.length !== 1) throw new Error(`expected one folder in ${root}, got ${names}`);
    return join(root, names[0]!);
  };
  const readJson = async <T>(name: string): Promise<T | undefined> => {
    try {
      return JSON.parse(await Deno.readTextFile(join(await serverDir(), name))) as T;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  };
  return {
    as,
    server,
    configDir,
    args: (...extra) => [server.url, "--config-dir", configDir, ...extra],
    serverDir,
    tokens: () => readJson<StoredTokens>("tokens.json"),
    client: () => readJson<Record<string, string>>("client.json"),
    [Symbol.asyncDispose]: async () => {
      await Promise.all([server.kill(), as.kill()]);
      await Deno.remove(temp, { recursive: true }).catch(() => {});
    },
  };
}

/** A port that was free a moment ago (for --callback-port, which a client is registered with). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** An SDK client whose stdio server is `mcp-proxy connect`; disposing it closes both. */
export type ProxyClient = Client & AsyncDisposable & {
  /** What the proxy logged so far. */
  stderr: string[];
  /** Closes the client, waits for the proxy to exit, and returns everything it logged. */
  finish(): Promise<string>;
};

function spawnConnect(args: readonly string[], env: Record<string, string>) {
  const transport = new StdioClientTransport({
    command: Deno.execPath(),
    args: ["run", "--quiet", ...runFlags(), MAIN, "connect", ...args],
    env,
    stderr: "pipe",
  });
  const stderr: string[] = [];
  let partial = "";
  const stream = transport.stderr!;
  const ended = new Promise<void>((resolve) => {
    stream.on("data", (chunk: Uint8Array | string) => {
      partial += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
      const lines = partial.split("\n");
      partial = lines.pop()!;
      stderr.push(...lines);
    });
    stream.on("end", () => {
      if (partial) stderr.push(partial);
      resolve();
    });
    stream.on("error", () => resolve());
  });
  const client = new Client({ name: "mcp-proxy-oauth-test", version: "1.0.0" }, {
    capabilities: {},
  });
  const finish = async () => {
    await client.close().catch(() => {});
    await ended;
    return stderr.join("\n");
  };
  return { transport, client, stderr, finish };
}

/** Spawns `mcp-proxy connect <args>` with `env` and connects (initialize + initialized). */
export async function connectProxy(
  args: readonly string[],
  env: Record<string, string>,
): Promise<ProxyClient> {
  const { transport, client, stderr, finish } = spawnConnect(args, env);
  try {
    await client.connect(transport);
  } catch (error) {
    const logged = await finish();
    throw new Error(`connect failed: ${(error as Error).message}\n${logged}`, { cause: error });
  }
  return Object.assign(client, {
    stderr,
    finish,
    [Symbol.asyncDispose]: async () => void await finish(),
  });
}

/** A connect whose initialize must fail: the JSON-RPC error, how long it took, what was logged. */
export async function connectFails(
  args: readonly string[],
  env: Record<string, string>,
): Promise<{ error: Error & { code?: number }; ms: number; stderr: string }> {
  const { transport, client, finish } = spawnConnect(args, env);
  const began = Date.now();
  const error = await client.connect(transport).then(
    () => undefined,
    (e: Error & { code?: number }) => e,
  );
  const ms = Date.now() - began;
  const stderr = await finish();
  if (!error) throw new Error(`initialize succeeded, but it must fail:\n${stderr}`);
  return { error, ms, stderr };
}
