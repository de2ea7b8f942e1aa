// `mcp-proxy connect <url>`: our stdin/stdout bridged to a remote MCP server. Ends (exit 0) on
// stdin EOF, SIGINT or SIGTERM, after ending the remote session. Also builds the remote upstream
// that `serve <url>` uses.

import { Bridge } from "./bridge.ts";
import type { ConnectOptions } from "./cli.ts";
import type { RemoteSpec } from "./cli_remote.ts";
import { StdioServerTransport } from "./downstream/stdio.ts";
import { NameFilter } from "./filter.ts";
import { addSecret, log } from "./log.ts";
import type { UpstreamTransport } from "./upstream/child.ts";
import { oauthFetch } from "./oauth/setup.ts";
import { disableEnvironmentProxies, netFetch, upstreamFetch } from "./upstream/http_fetch.ts";
import { RemoteTransport } from "./upstream/remote.ts";
import { shownUrl } from "./upstream/remote_probe.ts";

/** Connections to a remote server: `open()` is a new remote session. */
export interface RemoteUpstream {
  open: () => UpstreamTransport;
  /** True while an OAuth flow waits for a person; request timeouts hold meanwhile. */
  waitingForUser: () => boolean;
}

/** The remote upstream described by `spec` (one OAuth state shared by all its sessions). */
export async function remoteUpstream(spec: RemoteSpec): Promise<RemoteUpstream> {
  for (const [, value] of spec.headers) addSecret(value);
  if (!spec.enableProxy) disableEnvironmentProxies();
  const withHeaders = upstreamFetch(spec.headers);
  const auth = spec.oauth
    ? await oauthFetch({
      spec: spec.oauth,
      serverUrl: spec.url,
      label: shownUrl(spec.url),
      allowHttp: spec.allowHttp,
      upstream: withHeaders,
      plain: netFetch,
    })
    : { fetch: withHeaders, waitingForUser: () => false };
  return {
    open: () =>
      new RemoteTransport({
        url: spec.url,
        strategy: spec.strategy,
        fetch: auth.fetch,
        connectTimeoutMs: spec.connectTimeoutMs,
      }),
    waitingForUser: auth.waitingForUser,
  };
}

/** Runs until the client goes away or a signal arrives; resolves with the exit code. */
export async function runConnect(options: ConnectOptions): Promise<number> {
  const remote = await remoteUpstream(options.remote);
  const upstream = remote.open();
  let finished!: () => void;
  const done = new Promise<void>((resolve) => (finished = resolve));
  const stdio = new StdioServerTransport();
  const bridge = new Bridge(stdio, upstream, {
    filter: { tools: new NameFilter(options.tools) },
    requestTimeoutMs: options.remote.timeoutMs,
    holdClock: remote.waitingForUser,
    onClose: () => finished(),
  });
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGINT", "SIGTERM"];
  const onSignal = () => {
    log.debug("signal received; ending the session");
    void bridge.close("mcp-proxy is shutting down");
  };
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);
  // The client closed stdin: answer what it already asked (within --timeout), then end.
  stdio.oninputend = () => {
    const grace = options.remote.timeoutMs || 60_000;
    const timer = setTimeout(() => void bridge.close("stdin closed"), grace);
    void bridge.whenIdle().then(() => {
      clearTimeout(timer);
      return bridge.close("stdin closed");
    });
  };
  log.debug(`forwarding stdio to ${shownUrl(options.remote.url)}`);
  await bridge.start();
  await done;
  for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
  return 0;
}
