// A remote gateway member behind OAuth: the member's first request meets a 401, the browser flow
// runs once (the OAuth flags of serve are every remote member's defaults), and the member's
// route and the merged route both reach the protected server with the stored tokens.

import assert from "node:assert/strict";
import { connectHttp, textOf } from "./support/client.ts";
import { startGateway, stdioServer, tempDir, writeConfig } from "./support/gateway.ts";
import { browserEnv, startOAuth } from "./support/oauth.ts";

const SIMPLE = "This is a simple text response for testing.";

Deno.test("gateway: a remote member behind OAuth authorizes once; its route and merged use it", async () => {
  await using setup = await startOAuth();
  await using dir = await tempDir();
  const path = await writeConfig(dir.path, {
    mcpServers: {
      secure: { url: setup.server.url },
      every: stdioServer("everything_stdio.ts"),
    },
  });
  const flags = ["--config-dir", setup.configDir];
  {
    await using gateway = await startGateway(path, flags, { env: browserEnv() });
    await gateway.waitState(["secure", "every"]);
    await using merged = await connectHttp(gateway.mcpUrl);
    const names = (await merged.listTools()).tools.map((tool) => tool.name);
    assert.ok(
      names.includes("secure__test_simple_text") && names.includes("every__test_simple_text"),
    );
    const viaMerged = await merged.callTool({ name: "secure__test_simple_text", arguments: {} });
    assert.equal(textOf(viaMerged), SIMPLE);
    await using route = await connectHttp(gateway.route("secure"));
    assert.equal(textOf(await route.callTool({ name: "test_simple_text", arguments: {} })), SIMPLE);

    const stats = await setup.as.stats();
    assert.equal(stats.requests.authorization, 1, "one browser flow for the member and the route");
    assert.equal(stats.registrations.length, 1);
    assert.equal(stats.authorizations[0]?.resource, setup.server.url);
    const stored = await setup.tokens();
    assert.ok(stored?.access_token && stored.refresh_token, "tokens stored");
    assert.ok(
      !gateway.stderr.some((line) => line.includes(stored.access_token!)),
      "no token in the log",
    );
  }

  // The next start uses the stored tokens: no browser, no registration.
  await using again = await startGateway(path, flags, { env: browserEnv("never") });
  await again.waitState(["secure"]);
  await using merged = await connectHttp(again.mcpUrl);
  const result = await merged.callTool({ name: "secure__test_simple_text", arguments: {} });
  assert.equal(textOf(result), SIMPLE);
  const stats = await setup.as.stats();
  assert.equal(stats.requests.authorization, 1);
  assert.equal(stats.registrations.length, 1);
});
