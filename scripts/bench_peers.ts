// The npm peers for scripts/bench.ts --peers, installed with `npm i --prefix .bench supergateway
// mcp-proxy mcp-remote`: each run on Node in the modes comparable to ours, kept on 127.0.0.1.

import {
  startHttp,
  startStdio,
  type StdioFraming,
  stdioServer,
  type Target,
} from "./bench_targets.ts";

/**
 * The versions the tests install and measure (`tests/bench_test.ts`), and the README's tables
 * show. Others run too, as long as their command lines have not changed.
 */
export const TESTED_PEERS: Readonly<Record<string, string>> = {
  "supergateway": "4.0.0",
  "mcp-proxy": "6.7.19",
  "mcp-remote": "0.15.1",
};

/** An npm peer found in the peers directory. */
interface Peer {
  name: string;
  version: string;
  /** The entry script of its command-line tool. */
  bin: string;
}

/** Reads `<dir>/node_modules/<name>/package.json`; undefined when not installed. */
async function findPeer(dir: string, name: string, binName: string): Promise<Peer | undefined> {
  const root = `${dir}/node_modules/${name}`;
  try {
    const manifest = JSON.parse(await Deno.readTextFile(`${root}/package.json`));
    const bin = typeof manifest.bin === "string" ? manifest.bin : manifest.bin?.[binName];
    if (typeof bin !== "string") return undefined;
    return { name, version: String(manifest.version), bin: `${root}/${bin}` };
  } catch {
    return undefined;
  }
}

/**
 * Preloaded into peers that listen: keeps their server on 127.0.0.1 whatever host they pick
 * (supergateway has no --host flag) and prints the port they got for --port 0.
 */
const LOOPBACK_PRELOAD =
  `// Written by scripts/bench.ts: keeps a peer's server on 127.0.0.1 and reports its port.
const net = require("node:net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (typeof first === "number" || (typeof first === "string" && /^\\d+$/.test(first))) {
    if (typeof args[1] === "string") args[1] = "127.0.0.1";
    else args.splice(1, 0, "127.0.0.1");
  } else if (first && typeof first === "object" && "port" in first) {
    args[0] = { ...first, host: "127.0.0.1" };
  }
  this.once("listening", () => {
    const address = this.address();
    if (address && typeof address === "object") {
      process.stderr.write("bench-listening " + address.port + "\\n");
    }
  });
  return listen.apply(this, args);
};
`;
const PEER_READY = /^bench-listening (\d+)/;

/** Shell-quotes one word (supergateway runs its --stdio command through a shell). */
function quote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The npm peers installed under `dir` (`npm i --prefix .bench supergateway mcp-proxy
 * mcp-remote`), each in the modes comparable to ours; `missing` says which are not installed.
 */
export async function peerTargets(
  dir: string,
  framing: StdioFraming,
): Promise<{ targets: Target[]; missing: string[] }> {
  const STDIO_SERVER = stdioServer(framing);
  const preload = `${dir}/loopback.cjs`;
  await Deno.writeTextFile(preload, LOOPBACK_PRELOAD);
  const node = (peer: Peer, ...args: string[]) => ["node", "-r", preload, peer.bin, ...args];
  const targets: Target[] = [];
  const missing: string[] = [];
  const serveTarget = (
    peer: Peer,
    path: "mcp" | "sse",
    args: string[],
    label = "",
  ): Target => ({
    id: `${peer.name}/serve-${path}`,
    implementation: `${peer.name} ${peer.version}${label}`,
    direction: path === "mcp" ? "serve /mcp" : "serve /sse",
    remote: false,
    spawnsChildren: true,
    multiSession: true,
    start: () =>
      startHttp(
        node(peer, ...args),
        PEER_READY,
        (m) => new URL(`http://127.0.0.1:${m[1]}/${path}`),
        path === "mcp" ? "http" : "sse",
      ),
  });

  const supergateway = await findPeer(dir, "supergateway", "supergateway");
  if (supergateway) {
    const stdio = ["--stdio", STDIO_SERVER.map(quote).join(" "), "--port", "0"];
    const quiet = ["--logLevel", "none"];
    targets.push(
      serveTarget(supergateway, "mcp", [
        ...stdio,
        "--outputTransport",
        "streamableHttp",
        "--stateful",
        ...quiet,
      ], " (stateful)"),
      serveTarget(supergateway, "sse", [...stdio, "--outputTransport", "sse", ...quiet]),
      {
        id: "supergateway/connect",
        implementation: `supergateway ${supergateway.version}`,
        direction: "connect",
        remote: true,
        spawnsChildren: false,
        multiSession: false,
        start: (remote) =>
          Promise.resolve(
            startStdio(node(supergateway, "--streamableHttp", remote!, ...quiet)),
          ),
      },
    );
  } else missing.push("supergateway");

  const mcpProxy = await findPeer(dir, "mcp-proxy", "mcp-proxy");
  if (mcpProxy) {
    const args = ["--port", "0", "--host", "127.0.0.1", "--", ...STDIO_SERVER];
    targets.push(serveTarget(mcpProxy, "mcp", args), serveTarget(mcpProxy, "sse", args));
  } else missing.push("mcp-proxy");

  const mcpRemote = await findPeer(dir, "mcp-remote", "mcp-remote");
  if (mcpRemote) {
    const env = { MCP_REMOTE_CONFIG_DIR: `${dir}/mcp-remote-config` };
    targets.push({
      id: "mcp-remote/connect",
      implementation: `mcp-remote ${mcpRemote.version}`,
      direction: "connect",
      remote: true,
      spawnsChildren: false,
      multiSession: false,
      start: (remote) =>
        Promise.resolve(
          startStdio(node(mcpRemote, remote!, "--allow-http", "--silent"), env),
        ),
    });
  } else missing.push("mcp-remote");
  return { targets, missing };
}
