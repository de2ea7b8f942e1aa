/**
 * mcp-proxy as a library: the pieces the CLI is built from, to embed a Model Context Protocol
 * proxy in your own Deno program. Every mode is one downstream, a {@link Bridge}, and one
 * upstream, all speaking the MCP SDK's `Transport` interface.
 *
 * ```ts
 * import { Bridge, ChildTransport, StdioServerTransport } from "jsr:@x/mcp-proxy/mod";
 *
 * // Our stdin/stdout, bridged to a stdio server we spawn:
 * const bridge = new Bridge(
 *   new StdioServerTransport(),
 *   new ChildTransport({ command: "npx", args: ["-y", "@modelcontextprotocol/server-everything"] }),
 * );
 * await bridge.start();
 * ```
 *
 * @module
 */

/** Pipes JSON-RPC between a downstream and an upstream; see {@link BridgeOptions}. */
export { Bridge, type BridgeOptions, type ItemFilters } from "./bridge.ts";
/** A stdio MCP server spawned as a child process (process group, stderr relay). */
export { type ChildOptions, ChildTransport, type UpstreamTransport } from "./upstream/child.ts";
/** A remote MCP server over Streamable HTTP or legacy SSE, with fallback and session recovery. */
export { type RemoteOptions, RemoteTransport, type Strategy } from "./upstream/remote.ts";
/** One upstream shared by many clients, with JSON-RPC ids rewritten (stateless serving). */
export { SharedUpstream } from "./upstream/shared.ts";
/** Our own stdin/stdout as a transport (newline-delimited JSON). */
export { StdioServerTransport } from "./downstream/stdio.ts";
/** One legacy SSE session served over a web ReadableStream. */
export { SseServerTransport } from "./downstream/sse.ts";
/** One upstream exposed over HTTP: Streamable HTTP at /mcp, SSE at /sse and /message. */
export { type EndpointOptions, McpEndpoint } from "./downstream/endpoint.ts";
/** The HTTP front (Deno.serve) with Host/Origin/CORS/API-key guards and /health. */
export { type HttpServerOptions, type RunningServer, startHttpServer } from "./downstream/http.ts";
/** The sessions of an HTTP server, with idle reaping. */
export { SessionRegistry } from "./downstream/sessions.ts";
/** The bounded in-memory event store used for resumability. */
export { BoundedEventStore, type EventStoreLimits } from "./downstream/event_store.ts";
/** Allow/ignore glob rules for tool, prompt and resource names. */
export { type FilterRules, NameFilter } from "./filter.ts";
/** The CLI itself: parse a command line into options. */
export { type Command, parseCli } from "./cli.ts";
/** The package version. */
export { VERSION } from "./version.ts";
