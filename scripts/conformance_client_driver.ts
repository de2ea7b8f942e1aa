// The "client under test" that `conformance client` launches (see scripts/conformance.ts): an MCP
// host that spawns `mcp-proxy connect <url>` over stdio, with the flags and a headless $BROWSER
// the scenario needs, and makes the calls it expects. All OAuth happens inside the proxy.

import { fileURLToPath } from "node:url";
import { formatError } from "../src/errors.ts";
import { log } from "../src/log.ts";
import { runFlags } from "../src/permissions.ts";
import { VERSION } from "../src/version.ts";
import { Client, ElicitRequestSchema, StdioClientTransport } from "../tests/support/sdk.ts";
import { SCENARIOS } from "./conformance_client.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../", import.meta.url));
const BROWSER = fileURLToPath(new URL("./conformance_browser.ts", import.meta.url));
/** Hard-coded in the suite (basic-cimd checks the client_id against it); never fetched. */
const CIMD_URL = "https://conformance-test.local/client-metadata.json";

/** Scenarios whose expected outcome is an error from the proxy (the suite allows it). */
const ERROR_EXPECTED = new Set(["auth/scope-retry-limit", "auth/resource-mismatch"]);

type Context = Record<string, string | undefined>;

/** A line in the scenario's stderr.txt, told apart from the proxy's own lines. */
function note(message: string): void {
  log.child("driver", message);
}

/** The OAuth flags for `scenario`; `dir` is this run's private temporary folder. */
async function oauthFlags(scenario: string, context: Context, dir: string): Promise<string[]> {
  const need = (key: string): string => {
    const value = context[key];
    if (typeof value !== "string") throw new Error(`MCP_CONFORMANCE_CONTEXT lacks "${key}"`);
    return value;
  };
  switch (scenario) {
    case "auth/pre-registration":
      return [
        "--static-oauth-client-info",
        JSON.stringify({ client_id: need("client_id"), client_secret: need("client_secret") }),
      ];
    case "auth/client-credentials-basic":
      return ["--client-id", need("client_id"), "--client-secret", need("client_secret")];
    case "auth/client-credentials-jwt": {
      const key = `${dir}/client-key.pem`;
      await Deno.writeTextFile(key, need("private_key_pem"), { mode: 0o600 });
      await Deno.chmod(key, 0o600);
      return ["--client-id", need("client_id"), "--client-private-key", `@${key}`];
    }
    case "auth/cross-app-access-complete-flow":
      return [
        ["--client-id", need("client_id")],
        ["--client-secret", need("client_secret")],
        ["--idp-token-url", need("idp_token_endpoint")],
        ["--idp-client-id", need("idp_client_id")],
        ["--idp-id-token", need("idp_id_token")],
      ].flat();
    default:
      // Used only where the authorization server supports client ID metadata documents.
      return scenario.startsWith("auth/") ? ["--client-metadata-url", CIMD_URL] : [];
  }
}

/** Accepts every elicitation, filling in each field's default. */
function acceptWithDefaults(client: Client): void {
  client.setRequestHandler(ElicitRequestSchema, (request) => {
    const schema = (request.params as { requestedSchema?: { properties?: object } })
      .requestedSchema;
    const content: Record<string, string | number | boolean | string[]> = {};
    for (const [name, field] of Object.entries(schema?.properties ?? {})) {
      if (field && typeof field === "object" && "default" in field) content[name] = field.default;
    }
    return { action: "accept", content };
  });
}

/** What the host does once connected, per scenario. */
async function exercise(client: Client, scenario: string): Promise<void> {
  const { tools } = await client.listTools();
  note(`tools: ${tools.map((tool) => tool.name).join(", ")}`);
  const call = async (name: string, args: Record<string, unknown> = {}) => {
    const result = await client.callTool({ name, arguments: args });
    note(`${name}: ${JSON.stringify(result.content)}`);
  };
  if (scenario === "tools_call") await call("add_numbers", { a: 5, b: 3 });
  else if (scenario === "elicitation-sep1034-client-defaults") {
    await call("test_client_elicitation_defaults");
  } else if (scenario === "sse-retry") await call("test_reconnection");
  // Unconditionally: scope step-up happens on the call, not on the list.
  else if (scenario.startsWith("auth/")) await call("test-tool");
}

/** Runs one scenario against `url`; resolves with the exit code. */
async function drive(scenario: string, url: string, context: Context): Promise<number> {
  const dir = await Deno.makeTempDir({
    dir: Deno.env.get("MCP_PROXY_CONFORMANCE_TMP"),
    prefix: "client-",
  });
  try {
    const args = [
      ...["run", "--quiet", ...runFlags(), MAIN, "connect", url, "--log-level", "debug"],
      ...["--config-dir", `${dir}/config`, "--auth-timeout", "20s"],
      ...await oauthFlags(scenario, context, dir),
    ];
    const browser = [Deno.execPath(), "run", "--quiet", "--no-prompt"];
    browser.push("--allow-net=127.0.0.1,localhost", BROWSER);
    const transport = new StdioClientTransport({
      command: Deno.execPath(),
      args,
      cwd: ROOT,
      env: { ...Deno.env.toObject(), BROWSER: browser.join(" ") },
      stderr: "inherit",
    });
    const elicitation = scenario === "elicitation-sep1034-client-defaults";
    const client = new Client({ name: "mcp-proxy-conformance-driver", version: VERSION }, {
      capabilities: elicitation ? { elicitation: { form: { applyDefaults: true } } } : {},
    });
    if (elicitation) acceptWithDefaults(client);
    try {
      await client.connect(transport);
      await exercise(client, scenario);
      return 0;
    } catch (error) {
      const expected = ERROR_EXPECTED.has(scenario);
      note(`${expected ? "expected " : ""}failure: ${formatError(error)}`);
      return expected ? 0 : 1;
    } finally {
      await client.close().catch(() => {});
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const scenario = Deno.env.get("MCP_CONFORMANCE_SCENARIO") ?? "";
  const url = Deno.args.at(-1);
  if (!SCENARIOS.includes(scenario) || !url) {
    note(`unknown scenario "${scenario}" (or no URL); expected one of ${SCENARIOS.join(", ")}`);
    Deno.exit(2);
  }
  const context = JSON.parse(Deno.env.get("MCP_CONFORMANCE_CONTEXT") ?? "{}") as Context;
  Deno.exit(await drive(scenario, url, context));
}
