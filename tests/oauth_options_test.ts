// OAuth options and guarantees not covered elsewhere: --resource / --no-resource, the config
// directory from MCP_PROXY_CONFIG_DIR, a redirect_uri that does not drift between runs,
// --token-url, an `iss` that does not match, and request timeouts that wait for the browser.

import assert from "node:assert/strict";
import { join } from "node:path";
import { browserEnv, connectFails, connectProxy, startOAuth } from "./support/oauth.ts";
import type { Client } from "./support/sdk.ts";
import { textOf } from "./support/client.ts";

const SIMPLE = "This is a simple text response for testing.";

async function simple(client: Client): Promise<string> {
  return textOf(await client.callTool({ name: "test_simple_text", arguments: {} }));
}

Deno.test("oauth: --resource overrides the server's resource; --no-resource sends none", async () => {
  await using setup = await startOAuth();
  const other = "https://resource.example/mcp";
  await connectFails(setup.args("--resource", other, "--auth-timeout", "10s"), browserEnv());
  await connectFails(setup.args("--no-resource", "--auth-timeout", "10s"), browserEnv());
  const [overridden, none] = (await setup.as.stats()).authorizations;
  assert.equal(overridden?.resource, other);
  assert.equal(none?.resource, undefined, "no resource parameter at all");
});

Deno.test("oauth: MCP_PROXY_CONFIG_DIR is where tokens go without --config-dir", async () => {
  await using setup = await startOAuth();
  const [url] = setup.args();
  {
    await using client = await connectProxy([url!], {
      ...browserEnv(),
      MCP_PROXY_CONFIG_DIR: setup.configDir,
    });
    assert.equal(await simple(client), SIMPLE);
  }
  assert.ok((await setup.tokens())?.access_token, "stored under MCP_PROXY_CONFIG_DIR");
});

Deno.test("oauth: the redirect_uri is the same on every run, so the registration holds", async () => {
  await using setup = await startOAuth();
  for (let run = 0; run < 2; run++) {
    await using client = await connectProxy(setup.args(), browserEnv());
    assert.equal(await simple(client), SIMPLE);
    // Forget the tokens only: the next run authorizes again with the stored registration.
    await Deno.remove(join(await setup.serverDir(), "tokens.json"));
  }
  const stats = await setup.as.stats();
  assert.equal(stats.authorizations.length, 2);
  assert.equal(stats.authorizations[0]?.redirect_uri, stats.authorizations[1]?.redirect_uri);
  assert.equal(stats.registrations.length, 1, "registered once");
});

Deno.test("oauth: --token-url is the token endpoint for client credentials", async () => {
  await using setup = await startOAuth({
    as: [
      "--client",
      JSON.stringify({
        client_id: "machine",
        client_secret: "machine-secret-5c3b",
        grant_types: ["client_credentials"],
        response_types: [],
        redirect_uris: [],
      }),
    ],
  });
  let relayed = 0;
  const tokenEndpoint = new URL("/token", setup.as.issuer);
  await using relay = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    relayed++;
    return fetch(tokenEndpoint, { method: req.method, headers: req.headers, body: req.body });
  });
  const tokenUrl = `http://127.0.0.1:${relay.addr.port}/token`;
  await using client = await connectProxy(
    setup.args(
      "--client-id",
      "machine",
      "--client-secret",
      "machine-secret-5c3b",
      "--token-url",
      tokenUrl,
    ),
    browserEnv("never"),
  );
  assert.equal(await simple(client), SIMPLE);
  assert.equal(relayed, 1, "the token request went to --token-url");
});

Deno.test("oauth: an authorization response from another issuer (RFC 9207 iss) is refused", async () => {
  await using setup = await startOAuth();
  const failed = await connectFails(setup.args("--auth-timeout", "10s"), browserEnv("wrong-iss"));
  assert.equal(failed.error.code, -32000);
  assert.match(failed.error.message, /authorization was refused: .*iss/i);
  assert.equal((await setup.as.stats()).grants.authorization_code ?? 0, 0, "no code exchanged");
});

Deno.test("oauth: --timeout waits while the person authorizes in the browser", async () => {
  await using setup = await startOAuth();
  await using client = await connectProxy(setup.args("--timeout", "500ms"), {
    ...browserEnv(),
    BROWSER_DELAY_MS: "1500",
  });
  assert.equal(await simple(client), SIMPLE);
});
