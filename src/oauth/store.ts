// Where OAuth state lives: one folder per server URL + resource under the config directory, holding
// tokens, the client registration and discovered metadata. Folders 0700, files 0600, written
// atomically; never scoped by program version. A lock file lets parallel instances share flows.

import { formatError, ProxyError } from "../errors.ts";
import { log } from "../log.ts";

export interface StoredTokens {
  access_token: string;
  token_type?: string;
  refresh_token?: string;
  scope?: string;
  /** Epoch milliseconds when it was issued (for the refresh margin of short-lived tokens). */
  issued_at?: number;
  /** Epoch milliseconds; absent when the server gave no lifetime. */
  expires_at?: number;
}

export interface StoredClient {
  client_id: string;
  client_secret?: string;
  token_endpoint_auth_method?: string;
  /** The redirect URI it was registered with (a new one needs a new registration). */
  redirect_uri?: string;
  /** The authorization server it belongs to. */
  issuer: string;
}

const SEPARATOR = Deno.build.os === "windows" ? "\\" : "/";

/**
 * Joins path parts with the platform's separator, without doubling one a part already ends with.
 * Not node:path's join: any node: import makes Deno set up its Node layer (about 5 MB of RSS and
 * 5 to 10 ms of start-up on every run).
 */
function join(...parts: string[]): string {
  return parts.reduce((path, part) =>
    path.endsWith("/") || path.endsWith(SEPARATOR) ? path + part : path + SEPARATOR + part
  );
}

/** The OS config directory for mcp-proxy (under MCP_PROXY_CONFIG_DIR when that is set). */
export function defaultConfigDir(env: (name: string) => string | undefined): string {
  const explicit = env("MCP_PROXY_CONFIG_DIR");
  if (explicit) return explicit;
  const home = env("HOME") ?? env("USERPROFILE") ?? ".";
  switch (Deno.build.os) {
    case "windows":
      return join(env("APPDATA") ?? join(home, "AppData", "Roaming"), "mcp-proxy");
    case "darwin":
      return join(home, "Library", "Application Support", "mcp-proxy");
    default:
      return join(env("XDG_CONFIG_HOME") ?? join(home, ".config"), "mcp-proxy");
  }
}

const LOCK_STALE_MS = 5000;
const encoder = new TextEncoder();

/** The stored state of one server (URL + resource). */
export class ServerStore {
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Opens (creating, 0700) the folder for `serverUrl` + `resource` under `configDir`. */
  static async open(configDir: string, serverUrl: URL, resource?: string): Promise<ServerStore> {
    const key = `${serverUrl.href}\n${resource ?? ""}`;
    const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(key)));
    const name = [...hash.subarray(0, 12)].map((b) => b.toString(16).padStart(2, "0")).join("");
    const dir = join(configDir, "servers", name);
    try {
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
      if (Deno.build.os !== "windows") {
        await Deno.chmod(configDir, 0o700);
        await Deno.chmod(join(configDir, "servers"), 0o700);
        await Deno.chmod(dir, 0o700);
      }
    } catch (error) {
      throw new ProxyError("permission", `cannot use the config directory ${configDir}`, {
        cause: error,
      });
    }
    const store = new ServerStore(dir);
    await store.#write("server.json", { url: serverUrl.href, resource: resource ?? null });
    return store;
  }

  readTokens(): Promise<StoredTokens | undefined> {
    return this.#read<StoredTokens>("tokens.json");
  }

  writeTokens(tokens: StoredTokens): Promise<void> {
    return this.#write("tokens.json", tokens);
  }

  async clearTokens(): Promise<void> {
    await Deno.remove(join(this.dir, "tokens.json")).catch(() => {});
  }

  readClient(): Promise<StoredClient | undefined> {
    return this.#read<StoredClient>("client.json");
  }

  writeClient(client: StoredClient): Promise<void> {
    return this.#write("client.json", client);
  }

  async clearClient(): Promise<void> {
    await Deno.remove(join(this.dir, "client.json")).catch(() => {});
  }

  readMetadata<T>(): Promise<T | undefined> {
    return this.#read<T>("metadata.json");
  }

  writeMetadata(metadata: unknown): Promise<void> {
    return this.#write("metadata.json", metadata);
  }

  /**
   * Runs `work` holding this server's lock, so parallel instances run one flow between them. A
   * waiting instance polls; a lock whose holder stopped refreshing it (a dead process) is broken.
   */
  async withLock<T>(work: () => Promise<T>, waitMs: number): Promise<T> {
    const path = join(this.dir, "flow.lock");
    const deadline = Date.now() + waitMs;
    let announced = false;
    for (;;) {
      try {
        const file = await Deno.open(path, { createNew: true, write: true, mode: 0o600 });
        await file.write(encoder.encode(`${Deno.pid}\n`));
        file.close();
        break;
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) {
          throw new ProxyError("permission", `cannot create ${path}`, { cause: error });
        }
      }
      const age = await Deno.stat(path).then(
        (s) => Date.now() - (s.mtime?.getTime() ?? 0),
        () => 0,
      );
      if (age > LOCK_STALE_MS) {
        log.info(`breaking a stale lock (${Math.round(age / 1000)}s old): ${path}`);
        await Deno.remove(path).catch(() => {});
        continue;
      }
      if (Date.now() > deadline) {
        throw new ProxyError("timeout", `another mcp-proxy holds ${path}; gave up waiting`);
      }
      if (!announced) log.info("another mcp-proxy is authorizing this server; waiting for it");
      announced = true;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const heartbeat = setInterval(() => {
      Deno.utime(path, new Date(), new Date()).catch(() => {});
    }, 1000);
    try {
      return await work();
    } finally {
      clearInterval(heartbeat);
      await Deno.remove(path).catch((error) => log.debug(`lock: ${formatError(error)}`));
    }
  }

  async #read<T>(name: string): Promise<T | undefined> {
    try {
      return JSON.parse(await Deno.readTextFile(join(this.dir, name))) as T;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        log.warn(`ignored ${join(this.dir, name)}: ${formatError(error)}`);
      }
      return undefined;
    }
  }

  /** Writes a 0600 temporary file, then renames it over the old one (atomic on one volume). */
  async #write(name: string, value: unknown): Promise<void> {
    const target = join(this.dir, name);
    const temporary = `${target}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
    try {
      await Deno.writeTextFile(temporary, JSON.stringify(value, null, 2) + "\n", { mode: 0o600 });
      if (Deno.build.os !== "windows") await Deno.chmod(temporary, 0o600);
      await Deno.rename(temporary, target);
    } catch (error) {
      await Deno.remove(temporary).catch(() => {});
      throw new ProxyError("permission", `cannot write ${target}`, { cause: error });
    }
  }
}
