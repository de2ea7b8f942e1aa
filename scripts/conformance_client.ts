// The official conformance *client* suite (26 scenarios, run in parallel) against `mcp-proxy
// connect`, driven by scripts/conformance_client_driver.ts. A scenario passes only when its
// checks.json has no FAILURE or WARNING and holds every key check below as SUCCESS, so one that
// records nothing (initialize with a client that never connects) cannot pass by being empty. A
// timed scenario that fails in the parallel run is run again alone, and that run decides (TIMED).

import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const DRIVER = fileURLToPath(new URL("./conformance_client_driver.ts", import.meta.url));
const CONFIG = fileURLToPath(new URL("../deno.json", import.meta.url));

const DISCOVERY = ["prm-pathbased-requested", "authorization-server-metadata"];
const PKCE = [
  "authorization-request",
  "pkce-code-challenge-sent",
  "pkce-s256-method-used",
  "token-request",
  "pkce-code-verifier-sent",
  "pkce-verifier-matches-challenge",
];
const USED = "valid-bearer-token";
/** Browser flow with dynamic registration, discovery and the token used. */
const DCR_FLOW = [...DISCOVERY, "client-registration", ...PKCE, USED];
const RESOURCE = [
  "resource-parameter-in-authorization",
  "resource-parameter-in-token",
  "resource-parameter-valid-uri",
  "resource-parameter-consistency",
];
const ELICITATION = ["string", "integer", "number", "enum", "boolean"].map((kind) =>
  `client-elicitation-sep1034-${kind}-default`
);

/** Per scenario, the check ids that must be present and SUCCESS. */
export const KEY_CHECKS: Record<string, readonly string[]> = {
  "initialize": ["mcp-client-initialization"],
  "tools_call": ["tool-add-numbers"],
  "elicitation-sep1034-client-defaults": ELICITATION,
  "sse-retry": [
    "client-sse-graceful-reconnect",
    "client-sse-retry-timing",
    "client-sse-last-event-id",
  ],
  "auth/metadata-default": DCR_FLOW,
  "auth/metadata-var1": DCR_FLOW,
  "auth/metadata-var2": DCR_FLOW,
  "auth/metadata-var3": DCR_FLOW,
  "auth/basic-cimd": [...DISCOVERY, ...PKCE, "cimd-client-id-used", USED],
  "auth/scope-from-www-authenticate": [...DCR_FLOW, "scope-from-www-authenticate"],
  "auth/scope-from-scopes-supported": [...DCR_FLOW, "scope-from-scopes-supported"],
  "auth/scope-omitted-when-undefined": [...DCR_FLOW, "scope-omitted-when-undefined"],
  "auth/scope-step-up": [...DCR_FLOW, "scope-step-up-initial", "scope-step-up-escalation"],
  "auth/scope-retry-limit": [...DISCOVERY, "client-registration", ...PKCE, "scope-retry-limit"],
  "auth/token-endpoint-auth-basic": [...DCR_FLOW, "token-endpoint-auth-method", ...RESOURCE],
  "auth/token-endpoint-auth-post": [...DCR_FLOW, "token-endpoint-auth-method", ...RESOURCE],
  "auth/token-endpoint-auth-none": [...DCR_FLOW, "token-endpoint-auth-method", ...RESOURCE],
  "auth/pre-registration": [...DISCOVERY, ...PKCE, "pre-registration-auth", USED],
  "auth/2025-03-26-oauth-metadata-backcompat": [
    "authorization-server-metadata",
    "client-registration",
    ...PKCE,
    USED,
  ],
  "auth/2025-03-26-oauth-endpoint-fallback": [
    "client-registration",
    "authorization-request",
    "token-request",
    USED,
  ],
  "auth/resource-mismatch": ["prm-pathbased-requested", "resource-mismatch-rejected"],
  "auth/offline-access-scope": [...DISCOVERY, ...PKCE, USED],
  "auth/offline-access-not-supported": [...DCR_FLOW, "sep-2207-offline-access-not-requested"],
  "auth/client-credentials-jwt": [
    ...DISCOVERY,
    "token-request",
    "client-credentials-jwt-verified",
    USED,
  ],
  "auth/client-credentials-basic": [
    ...DISCOVERY,
    "token-request",
    "client-credentials-basic-auth",
    USED,
  ],
  "auth/cross-app-access-complete-flow": [
    ...DISCOVERY,
    "complete-flow-token-exchange",
    "token-request",
    "complete-flow-jwt-bearer",
    USED,
  ],
};

/** The 26 scenarios of 0.1.16 `--suite all`; the driver refuses any other (add it on purpose). */
export const SCENARIOS: readonly string[] = Object.keys(KEY_CHECKS);

export interface ClientScore {
  /** One line per scenario: "ok <name>: N passed" or "FAIL <name>: why". */
  lines: string[];
  passedScenarios: number;
  passedChecks: number;
  /** What is wrong overall (empty when all 26 scenarios passed). */
  problems: string[];
  /** The suite's command line, to run it again by hand. */
  commandLine: string;
}

interface Check {
  id: string;
  status: "SUCCESS" | "FAILURE" | "WARNING" | "INFO";
  description?: string;
}

/**
 * Runs `conformance client --suite all` (the CLI is `suite`) with the driver as the client, in
 * `dir` (results under dir/results; the driver's private folders under dir/driver).
 */
export async function runClientSuite(suite: string, dir: string): Promise<ClientScore> {
  const results = join(dir, "results");
  const scratch = join(dir, "driver");
  await Deno.mkdir(scratch, { mode: 0o700 });
  // The CLI splits --command on single spaces, with no quoting: no token may contain one.
  const command = [
    ...[Deno.execPath(), "run", "--quiet", "--no-prompt", `--config=${CONFIG}`],
    ...[`--allow-run=${Deno.execPath()}`, "--allow-env", `--allow-write=${scratch}`, DRIVER],
  ];
  const spaced = command.find((token) => /\s/.test(token));
  if (spaced) throw new Error(`the client suite cannot run from a path with spaces: "${spaced}"`);
  const run = (select: string[], output: string) => {
    const args = [
      ...["run", "-A", "--quiet", "--no-config", "--no-lock", suite, "client"],
      ...["--command", command.join(" "), ...select, "-o", output],
    ];
    const commandLine = `MCP_PROXY_CONFORMANCE_TMP=${scratch} ${Deno.execPath()} ` +
      args.map((arg) => (/\s/.test(arg) ? `"${arg}"` : arg)).join(" ");
    const done = new Deno.Command(Deno.execPath(), {
      args,
      env: { MCP_PROXY_CONFORMANCE_TMP: scratch },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { commandLine, done };
  };
  const { commandLine, done } = run(["--suite", "all"], results);
  const output = await done;
  const text = new TextDecoder().decode(output.stdout);
  const found = await readChecks(results);
  const lines: string[] = [];
  const failed: string[] = [];
  let passedScenarios = 0;
  let passedChecks = 0;
  /** A timed scenario failed in the parallel run and passed alone. */
  let rescued = false;
  for (const scenario of SCENARIOS) {
    let checks = found.get(scenario);
    let why = checks ? judge(scenario, checks) : "no checks.json (the scenario did not run)";
    let again = "";
    if (why && checks && TIMED.includes(scenario)) {
      // Run again alone: that run decides, and the parallel one's verdict is shown with it.
      const alone = join(dir, "alone");
      await run(["--scenario", scenario], alone).done;
      checks = (await readChecks(alone)).get(scenario);
      again = ` (run again alone; in the parallel suite: ${why})`;
      why = checks ? judge(scenario, checks) : "no checks.json when run again alone";
    }
    const passed = checks?.filter((check) => check.status === "SUCCESS").length ?? 0;
    passedChecks += passed;
    if (why) {
      failed.push(`${scenario}: ${why}${again}`);
      lines.push(`FAIL ${scenario}: ${why}${again}`);
    } else {
      passedScenarios++;
      rescued ||= again !== "";
      lines.push(`ok   ${scenario}: ${passed} passed${again}`);
    }
  }
  const problems: string[] = [];
  // The suite's own verdict counts too, unless all it saw wrong passed when run again alone.
  const clean = /^Total: \d+ passed, 0 failed, 0 warnings$/m.test(text) && output.success;
  if (!clean && !(rescued && failed.length === 0)) {
    const total = /^Total: .*$/m.exec(text)?.[0] ?? "no total printed";
    problems.push(`the suite did not pass (exit ${output.code}; ${total})`);
  }
  problems.push(...failed);
  for (const name of found.keys()) {
    if (!SCENARIOS.includes(name)) problems.push(`unexpected scenario ${name}`);
  }
  return { lines, passedScenarios, passedChecks, problems, commandLine };
}

/**
 * Scenarios whose checks time the client: sse-retry wants the reconnection within 200 ms of the
 * server's `retry`. With the other 25 scenarios running at once on a 2-core machine, our client
 * has been seen 14 ms past that (714 against 700 ms), so one that fails there is run again alone.
 */
const TIMED: readonly string[] = ["sse-retry"];

/** Why the scenario failed, or undefined when it passed. */
function judge(scenario: string, checks: Check[]): string | undefined {
  const bad = checks.filter((check) => check.status === "FAILURE" || check.status === "WARNING");
  if (bad.length > 0) {
    return bad.map((check) => `${check.id} ${check.status} (${check.description})`).join("; ");
  }
  const missing = (KEY_CHECKS[scenario] ?? []).filter((id) =>
    !checks.some((check) => check.id === id && check.status === "SUCCESS")
  );
  if (!KEY_CHECKS[scenario]) return "no key checks are listed for it";
  return missing.length > 0 ? `missing ${missing.join(", ")}` : undefined;
}

/** checks.json by scenario: results/<name>-<timestamp>/checks.json, where name may hold "/". */
async function readChecks(results: string): Promise<Map<string, Check[]>> {
  const found = new Map<string, Check[]>();
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (entry.name === "checks.json") {
        const name = relative(results, dir).replaceAll("\\", "/")
          .replace(/-\d{4}-\d\d-\d\dT[\d-]+Z$/, "");
        found.set(name, JSON.parse(await Deno.readTextFile(path)) as Check[]);
      }
    }
  };
  await walk(results).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  return found;
}
