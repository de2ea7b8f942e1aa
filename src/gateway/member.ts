// One configured server as the merged route sees it: a long-lived SDK client, supervised. It
// starts, lists its tools, prompts and resources (again on list_changed), and when it fails to
// start or dies it is restarted with backoff; its state is what /health reports.

import { formatError } from "../errors.ts";
import { log } from "../log.ts";
import {
  Client,
  LoggingMessageNotificationSchema,
  type Prompt,
  PromptListChangedNotificationSchema,
  type Resource,
  ResourceListChangedNotificationSchema,
  type ResourceTemplate,
  ResourceUpdatedNotificationSchema,
  type ServerCapabilities,
  type Tool,
  ToolListChangedNotificationSchema,
} from "../sdk.ts";
import type { UpstreamTransport } from "../upstream/child.ts";

export type MemberState = "disabled" | "starting" | "ready" | "failed" | "stopped";

export interface MemberStatus {
  state: MemberState;
  reason?: string;
  restarts: number;
  required: boolean;
}

export interface MemberEvents {
  /** Its items or its state changed (the merged lists must be sent again). */
  changed(member: Member): void;
  log(member: Member, params: LogParams): void;
  resourceUpdated(member: Member, uri: string): void;
}

export type LogParams = ReturnType<typeof LoggingMessageNotificationSchema.parse>["params"];

export interface MemberOptions {
  name: string;
  required: boolean;
  disabled: boolean;
  /** Per request, milliseconds; undefined uses the SDK's default. */
  timeoutMs?: number;
  open: () => UpstreamTransport;
  version: string;
}

const MAX_BACKOFF_MS = 30_000;
/** How long a liveness ping may take before the member counts as gone. */
const PROBE_TIMEOUT_MS = 5_000;
/**
 * How often a ready member with no request in flight is pinged (a dead remote says nothing by
 * itself). A busy member is not: a server that runs one tool at a time cannot answer a ping.
 */
const HEARTBEAT_MS = 30_000;
/** The initialize handshake's own bound: a per-request timeout must not stop a slow start. */
const START_TIMEOUT_MS = 60_000;

export class Member {
  readonly name: string;
  state: MemberState;
  reason?: string;
  restarts = 0;
  /** Requests of merged sessions in flight to this member. */
  inflight = 0;
  capabilities?: ServerCapabilities;
  tools: Tool[] = [];
  prompts: Prompt[] = [];
  resources: Resource[] = [];
  templates: ResourceTemplate[] = [];
  #options: MemberOptions;
  #events: MemberEvents;
  #client?: Client;
  #timer?: ReturnType<typeof setTimeout>;
  #attempt = 0;
  #stopped = false;
  #probing?: Promise<void>;
  #heartbeat?: ReturnType<typeof setInterval>;

  constructor(options: MemberOptions, events: MemberEvents) {
    this.name = options.name;
    this.#options = options;
    this.#events = events;
    this.state = options.disabled ? "disabled" : "starting";
  }

  get status(): MemberStatus {
    const status: MemberStatus = {
      state: this.state,
      restarts: this.restarts,
      required: this.#options.required,
    };
    if (this.reason) status.reason = this.reason;
    return status;
  }

  /** The connected client, when ready. */
  get client(): Client | undefined {
    return this.state === "ready" ? this.#client : undefined;
  }

  get timeoutMs(): number | undefined {
    return this.#options.timeoutMs;
  }

  start(): void {
    if (this.state !== "disabled") void this.#connect();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearInterval(this.#heartbeat);
    const client = this.#client;
    this.#client = undefined;
    this.state = this.state === "disabled" ? "disabled" : "stopped";
    await client?.close().catch(() => {});
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    this.state = "starting";
    const client = new Client({ name: "mcp-proxy", version: this.#options.version }, {
      capabilities: {},
    });
    const transport = this.#options.open();
    client.onclose = () => this.#lost(client, transport);
    client.onerror = (error) => {
      log.debug(`${this.name}: ${formatError(error)}`);
      if (client === this.#client) this.suspect();
    };
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => this.#refresh(client));
    client.setNotificationHandler(PromptListChangedNotificationSchema, () => this.#refresh(client));
    client.setNotificationHandler(
      ResourceListChangedNotificationSchema,
      () => this.#refresh(client),
    );
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (notification) => {
      this.#events.resourceUpdated(this, notification.params.uri);
    });
    client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => {
      this.#events.log(this, notification.params);
    });
    try {
      const timeout = Math.max(this.#options.timeoutMs ?? 0, START_TIMEOUT_MS);
      await client.connect(transport, { timeout });
      if (this.#stopped) return void await client.close();
      this.#client = client;
      this.capabilities = client.getServerCapabilities();
      await this.#list(client);
      this.state = "ready";
      this.reason = undefined;
      this.#attempt = 0;
      log.info(`${this.name}: ready (${this.tools.length} tools)`);
      this.#events.changed(this);
      clearInterval(this.#heartbeat);
      this.#heartbeat = setInterval(() => {
        if (this.inflight === 0) this.suspect();
      }, HEARTBEAT_MS);
      Deno.unrefTimer(this.#heartbeat);
    } catch (error) {
      client.onclose = undefined;
      // A server that exits while it is listed is failed once: by #lost, or here.
      const lost = (this.state as MemberState) === "failed";
      if (this.#client === client) this.#client = undefined;
      await client.close().catch(() => {});
      if (!lost) this.#fail(formatError(error));
    }
  }

  /**
   * Something went wrong on the way to the server (a transport error, a request that could not
   * be sent): a ping tells whether it is still there; if not, it is closed and restarted.
   */
  suspect(): void {
    const client = this.#client;
    if (!client || this.state !== "ready" || this.#probing) return;
    this.#probing = client.ping({ timeout: PROBE_TIMEOUT_MS }).then(
      () => {},
      (error) => {
        if (client !== this.#client) return;
        this.#client = undefined;
        client.onclose = undefined;
        void client.close().catch(() => {});
        this.#fail(`MCP server stopped answering: ${formatError(error)}`);
      },
    ).finally(() => this.#probing = undefined);
  }

  #lost(client: Client, transport: UpstreamTransport): void {
    if (this.#stopped || client !== this.#client) return;
    this.#client = undefined;
    this.#fail(`MCP server ${transport.closeReason ?? "closed the connection"}`);
  }

  /** Marks it failed, drops its items (the merged lists change), and schedules a restart. */
  #fail(reason: string): void {
    if (this.#stopped) return;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#timer);
    const wasReady = this.state === "ready";
    this.state = "failed";
    this.reason = reason;
    this.tools = [];
    this.prompts = [];
    this.resources = [];
    this.templates = [];
    const delay = Math.min(1000 * 2 ** this.#attempt++, MAX_BACKOFF_MS);
    log.warn(`${this.name}: ${reason}; restarting in ${delay / 1000}s`);
    if (wasReady) this.#events.changed(this);
    this.#timer = setTimeout(() => {
      this.restarts++;
      void this.#connect();
    }, delay);
  }

  async #refresh(client: Client): Promise<void> {
    if (client !== this.#client) return;
    try {
      await this.#list(client);
      this.#events.changed(this);
    } catch (error) {
      log.warn(`${this.name}: could not list its items again: ${formatError(error)}`);
    }
  }

  /** Every page of every list the server offers. */
  async #list(client: Client): Promise<void> {
    const capabilities = client.getServerCapabilities() ?? {};
    const options = { timeout: this.#options.timeoutMs };
    const all = async <T>(
      page: (cursor?: string) => Promise<{ nextCursor?: string } & Record<string, unknown>>,
      key: string,
    ): Promise<T[]> => {
      const items: T[] = [];
      let cursor: string | undefined;
      do {
        const result = await page(cursor);
        items.push(...(result[key] as T[]));
        cursor = result.nextCursor;
      } while (cursor);
      return items;
    };
    this.tools = capabilities.tools
      ? await all<Tool>((cursor) => client.listTools({ cursor }, options), "tools")
      : [];
    this.prompts = capabilities.prompts
      ? await all<Prompt>((cursor) => client.listPrompts({ cursor }, options), "prompts")
      : [];
    this.resources = capabilities.resources
      ? await all<Resource>((cursor) => client.listResources({ cursor }, options), "resources")
      : [];
    this.templates = capabilities.resources
      ? await all<ResourceTemplate>(
        (cursor) => client.listResourceTemplates({ cursor }, options),
        "resourceTemplates",
      )
      : [];
  }
}
