// Entry point: runCli(Deno.args) -> exit code. The only place that calls Deno.exit.

import { tuneAllocator } from "./src/allocator.ts";
import { type EnvAccess, parseCli, type ServeOptions } from "./src/cli.ts";
import { exitCodeFor, formatError, permissionError, UsageError } from "./src/errors.ts";
import { log, setLogLevel } from "./src/log.ts";
import { granted, readEnv, revokeUnused, SECRET_ENV_VARS } from "./src/permissions.ts";
import { checkConfig, startServe } from "./src/serve.ts";
import { VERSION } from "./src/version.ts";

const encoder = new TextEncoder();

/** Runs one command line and resolves with the process exit code. */
export async function runCli(args: readonly string[]): Promise<number> {
  try {
    const command = parseCli(args, ENV);
    switch (command.mode) {
      case "help":
        await Deno.stdout.write(encoder.encode(command.text));
        return 0;
      case "version":
        await Deno.stdout.write(encoder.encode(`mcp-proxy ${VERSION}\n`));
        return 0;
      case "serve": {
        setLogLevel(command.logLevel);
        if (command.check) {
          await Deno.stdout.write(encoder.encode(await checkConfig(command) + "\n"));
          return 0;
        }
        scrubSecrets();
        revoke(serveNeeds(command));
        const handle = await startServe(command);
        await handle.done;
        return 0;
      }
      case "connect":
        setLogLevel(command.logLevel);
        scrubSecrets();
        revoke(new Set(command.remote.oauth ? ["read", "write", "run"] as const : []));
        // Loaded only for connect (serve -- <cmd> starts faster without the SDK's client).
        return await (await import("./src/connect.ts")).runConnect(command);
    }
  } catch (error) {
    const reported = permissionError(error) ?? error;
    if (reported instanceof UsageError) {
      log.error(`${reported.message}`);
    } else {
      log.error(formatError(reported));
    }
    return exitCodeFor(reported);
  }
}

/** The environment, read only where permission was granted, without prompting. */
const ENV: EnvAccess = {
  get: readEnv,
  readable: (name) => granted({ name: "env", variable: name }),
};

/** What a serve command line uses beyond net and env. */
function serveNeeds(options: ServeOptions): Set<"read" | "write" | "run"> {
  if (options.config !== undefined) return new Set(["read", "write", "run"]);
  if (options.remote) return new Set(options.remote.oauth ? ["read", "write", "run"] : []);
  return new Set(options.command ? ["run"] : []);
}

function revoke(needs: Set<"read" | "write" | "run">): void {
  const revoked = revokeUnused(needs);
  if (revoked.length > 0) {
    log.debug(`revoked the permissions this run does not use: ${revoked.join(", ")}`);
  }
}

/**
 * Removes secret fallbacks (already read) from our environment, so the servers we spawn do not
 * inherit the proxy's own API key. A child that needs one gets it with --env.
 */
function scrubSecrets(): void {
  for (const name of SECRET_ENV_VARS) {
    if (granted({ name: "env", variable: name })) Deno.env.delete(name);
  }
}

if (import.meta.main) {
  tuneAllocator();
  Deno.exit(await runCli(Deno.args));
}
