// The merged route: one MCP server whose tools, prompts and resources are the union of every
// ready member's, names namespaced (<server><separator><name>), resource URIs mapped reversibly
// (mcp-proxy://<server>/<original>), calls routed to the right member, list changes propagated.

import type { NameFilter } from "../filter.ts";
import { redact } from "../log.ts";
import {
  CallToolRequestSchema,
  CallToolResultSchema,
  CompleteRequestSchema,
  CompleteResultSchema,
  ErrorCode,
  GetPromptRequestSchema,
  GetPromptResultSchema,
  InMemoryTransport,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  LoggingLevelSchema,
  McpError,
  ReadResourceRequestSchema,
  ReadResourceResultSchema,
  Server,
  SetLevelRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from "../sdk.ts";
import type { UpstreamTransport } from "../upstream/child.ts";
import type { LogParams, Member } from "./member.ts";

/** MCP's log levels (RFC 5424), least severe first. */
const LEVELS = LoggingLevelSchema.options;

export interface MergedOptions {
  name: string;
  version: string;
  separator: string;
  /** Each member's filter (its toolFilter), applied to tools, prompts and resources. */
  filterOf: (member: string) => NameFilter | undefined;
}

const URI_PREFIX = "mcp-proxy://";

type Extra = {
  signal: AbortSignal;
  _meta?: { progressToken?: string | number };
  sendNotification: (
    notification: { method: string; params?: Record<string, unknown> },
  ) => Promise<void>;
};

export class MergedServer {
  #members: () => Member[];
  #options: MergedOptions;
  #sessions = new Set<Server>();
  /** The level each merged session asked for (logging/setLevel), as an index into LEVELS. */
  #levels = new WeakMap<Server, number>();

  constructor(members: () => Member[], options: MergedOptions) {
    this.#members = members;
    this.#options = options;
  }

  /** A new merged session: the client side of an in-memory pair with a fresh server behind it. */
  open(): UpstreamTransport {
    const server = this.#server();
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    server.onclose = () => {
      this.#sessions.delete(server);
      // The session that wanted the most detail may be gone: members need say no more.
      if (this.#levels.has(server)) void this.#applyLevel();
    };
    this.#sessions.add(server);
    void server.connect(serverSide);
    return clientSide;
  }

  /** Members came, went or changed their lists: every session is told to list again. */
  changed(): void {
    for (const server of this.#sessions) {
      if (!server.getClientCapabilities()) continue;
      void server.sendToolListChanged().catch(() => {});
      void server.sendPromptListChanged().catch(() => {});
      void server.sendResourceListChanged().catch(() => {});
    }
  }

  /** A member's log message, to each session that asked for its level (or set none). */
  log(member: Member, params: LogParams): void {
    const logger = params.logger ? `${member.name}/${params.logger}` : member.name;
    const rank = LEVELS.indexOf(params.level);
    for (const server of this.#sessions) {
      if (!server.getClientCapabilities() || rank < (this.#levels.get(server) ?? 0)) continue;
      void server.sendLoggingMessage({ ...params, logger }).catch(() => {});
    }
  }

  resourceUpdated(member: Member, uri: string): void {
    const mapped = toMerged(member.name, uri);
    for (const server of this.#sessions) {
      if (server.getClientCapabilities()) {
        void server.sendResourceUpdated({ uri: mapped }).catch(() => {});
      }
    }
  }

  #server(): Server {
    const { name, version, separator } = this.#options;
    const server = new Server({ name, version }, {
      capabilities: {
        tools: { listChanged: true },
        prompts: { listChanged: true },
        resources: { subscribe: true, listChanged: true },
        logging: {},
        completions: {},
      },
    });
    server.setRequestHandler(ListToolsRequestSchema, () => ({
      tools: this.#visible((m) => m.tools).map(([m, tool]) => ({
        ...tool,
        name: `${m.name}${separator}${tool.name}`,
      })),
    }));
    server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
      const [member, tool] = this.#byName(request.params.name, "tool", (m) => m.tools);
      return await this.#relay(
        member,
        member.client!.request(
          { method: "tools/call", params: { ...request.params, name: tool } },
          CallToolResultSchema,
          this.#forward(member, extra as Extra),
        ),
      );
    });
    server.setRequestHandler(ListPromptsRequestSchema, () => ({
      prompts: this.#visible((m) => m.prompts).map(([m, prompt]) => ({
        ...prompt,
        name: `${m.name}${separator}${prompt.name}`,
      })),
    }));
    server.setRequestHandler(GetPromptRequestSchema, async (request, extra) => {
      const [member, prompt] = this.#byName(request.params.name, "prompt", (m) => m.prompts);
      return await this.#relay(
        member,
        member.client!.request(
          { method: "prompts/get", params: { ...request.params, name: prompt } },
          GetPromptResultSchema,
          this.#forward(member, extra as Extra),
        ),
      );
    });
    server.setRequestHandler(ListResourcesRequestSchema, () => ({
      resources: this.#visible((m) => m.resources).map(([m, resource]) => ({
        ...resource,
        uri: toMerged(m.name, resource.uri),
      })),
    }));
    server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({
      resourceTemplates: this.#visible((m) => m.templates).map(([m, template]) => ({
        ...template,
        uriTemplate: toMerged(m.name, template.uriTemplate),
      })),
    }));
    server.setRequestHandler(ReadResourceRequestSchema, async (request, extra) => {
      const [member, uri] = this.#byUri(request.params.uri);
      const result = await this.#relay(
        member,
        member.client!.request(
          { method: "resources/read", params: { ...request.params, uri } },
          ReadResourceResultSchema,
          this.#forward(member, extra as Extra),
        ),
      );
      return {
        ...result,
        contents: result.contents.map((content) => ({
          ...content,
          uri: toMerged(member.name, content.uri),
        })),
      };
    });
    server.setRequestHandler(SubscribeRequestSchema, async (request) => {
      const [member, uri] = this.#byUri(request.params.uri);
      await this.#relay(member, member.client!.subscribeResource({ uri }));
      return {};
    });
    server.setRequestHandler(UnsubscribeRequestSchema, async (request) => {
      const [member, uri] = this.#byUri(request.params.uri);
      await this.#relay(member, member.client!.unsubscribeResource({ uri }));
      return {};
    });
    server.setRequestHandler(CompleteRequestSchema, async (request, extra) => {
      const ref = request.params.ref;
      const [member, local] = ref.type === "ref/prompt"
        ? this.#byName(ref.name, "prompt", (m) => m.prompts)
        : this.#byUri(ref.uri);
      const routed = ref.type === "ref/prompt" ? { ...ref, name: local } : { ...ref, uri: local };
      return await this.#relay(
        member,
        member.client!.request(
          { method: "completion/complete", params: { ...request.params, ref: routed } },
          CompleteResultSchema,
          this.#forward(member, extra as Extra),
        ),
      );
    });
    server.setRequestHandler(SetLevelRequestSchema, async (request) => {
      // Members are shared: they log at the most detailed level any session asked for, and each
      // session gets only what its own level lets through.
      this.#levels.set(server, LEVELS.indexOf(request.params.level));
      await this.#applyLevel();
      return {};
    });
    return server;
  }

  /** Members log at the most detailed level a live session asked for (if any asked). */
  async #applyLevel(): Promise<void> {
    let wanted: number | undefined;
    for (const session of this.#sessions) {
      const level = this.#levels.get(session);
      if (level !== undefined) wanted = Math.min(wanted ?? level, level);
    }
    if (wanted === undefined) return;
    await Promise.allSettled(
      this.#ready().filter((m) => m.capabilities?.logging).map((m) =>
        m.client!.setLoggingLevel(LEVELS[wanted]!)
      ),
    );
  }

  #ready(): Member[] {
    return this.#members().filter((member) => member.client !== undefined);
  }

  /** Each ready member's items that its filter lets through. */
  #visible<T extends { name: string }>(items: (m: Member) => T[]): Array<[Member, T]> {
    const out: Array<[Member, T]> = [];
    for (const member of this.#ready()) {
      const filter = this.#options.filterOf(member.name);
      for (const item of items(member)) {
        if (!filter?.active || filter.allows(item.name)) out.push([member, item]);
      }
    }
    return out;
  }

  /** The member and the member's own name for a namespaced tool or prompt name. */
  #byName<T extends { name: string }>(
    full: string,
    kind: string,
    items: (m: Member) => T[],
  ): [Member, string] {
    const at = full.indexOf(this.#options.separator);
    const member = at > 0 ? this.#member(full.slice(0, at)) : undefined;
    const local = at > 0 ? full.slice(at + this.#options.separator.length) : "";
    const filter = member && this.#options.filterOf(member.name);
    if (!member || (filter?.active && !filter.allows(local))) {
      throw wireError(ErrorCode.InvalidParams, `Unknown ${kind}: ${full}`);
    }
    if (!member.client) throw unavailable(member);
    if (kind === "tool" && !items(member).some((item) => item.name === local)) {
      throw wireError(ErrorCode.InvalidParams, `Unknown ${kind}: ${full}`);
    }
    return [member, local];
  }

  /** The member and its own URI for a merged URI; a resource its filter hides is unknown. */
  #byUri(uri: string): [Member, string] {
    const parsed = fromMerged(uri);
    const member = parsed && this.#member(parsed.member);
    const filter = member && this.#options.filterOf(member.name);
    const hidden = filter?.active &&
      member!.resources.some((item) => item.uri === parsed!.uri && !filter.allows(item.name));
    if (!member || !parsed || hidden) {
      throw wireError(ErrorCode.InvalidParams, `Unknown resource: ${uri}`);
    }
    if (!member.client) throw unavailable(member);
    return [member, parsed.uri];
  }

  /**
   * A member's answer, or its error as the member sent it: the SDK client's McpError puts
   * "MCP error N: " before the message, which would otherwise be added again at every hop. An
   * error that is not the server's (a transport failure) has the member checked.
   */
  async #relay<T>(member: Member, request: Promise<T>): Promise<T> {
    member.inflight++;
    try {
      return await request;
    } catch (error) {
      if (!(error instanceof McpError)) {
        member.suspect();
        throw error;
      }
      if (error.code === ErrorCode.ConnectionClosed) member.suspect();
      const prefix = `MCP error ${error.code}: `;
      let message = error.message.startsWith(prefix)
        ? error.message.slice(prefix.length)
        : error.message;
      if (error.code === ErrorCode.RequestTimeout && member.timeoutMs !== undefined) {
        const seconds = Math.round(member.timeoutMs / 100) / 10;
        message = `no answer from the MCP server within ${seconds}s ` +
          `(the "timeout" option of server "${member.name}")`;
      }
      throw wireError(error.code, message, error.data);
    } finally {
      member.inflight--;
    }
  }

  #member(name: string): Member | undefined {
    return this.#members().find((member) => member.name === name);
  }

  /** Cancellation, progress and the member's timeout, carried to the member's request. */
  #forward(member: Member, extra: Extra) {
    const token = extra._meta?.progressToken;
    return {
      signal: extra.signal,
      timeout: member.timeoutMs,
      resetTimeoutOnProgress: true,
      onprogress: token === undefined ? undefined : (progress: Record<string, unknown>) => {
        void extra.sendNotification({
          method: "notifications/progress",
          params: { ...progress, progressToken: token },
        }).catch(() => {});
      },
    };
  }
}

function unavailable(member: Member): Error {
  const why = member.reason ? `: ${redact(member.reason)}` : "";
  return wireError(ErrorCode.InternalError, `server "${member.name}" is not available${why}`);
}

/**
 * An error the SDK's Server sends as it is: its message goes on the wire unchanged (an McpError
 * would put "MCP error N: " in front, and the client's SDK adds that again).
 */
function wireError(code: number, message: string, data?: unknown): Error {
  return Object.assign(new Error(message), { code, data });
}

export function toMerged(member: string, uri: string): string {
  return `${URI_PREFIX}${member}/${uri}`;
}

export function fromMerged(uri: string): { member: string; uri: string } | undefined {
  if (!uri.startsWith(URI_PREFIX)) return undefined;
  const rest = uri.slice(URI_PREFIX.length);
  const slash = rest.indexOf("/");
  return slash > 0 ? { member: rest.slice(0, slash), uri: rest.slice(slash + 1) } : undefined;
}
