// OAuth tokens over time, end to end: expiry and refresh, revoked and rotated refresh tokens, a
// 401 or 403 in the middle of a session, transient token endpoint failures, and secrets in logs.

import assert from "node:assert/strict";
import { join } from "node:path";
import { textOf } from "./support/client.ts";
import { browserEnv, connectProxy, startOAuth } from "./support/oauth.ts";
import type { Client } from "./support/sdk.ts";
import { waitFor } from "./support/wait.ts";

const SIMPLE = "This is a simple text response for testing.";

async function simple(client: Client): Promise<string> {
  return textOf(await client.callTool({ name: "test_simple_text", arguments: {} }));
}

/** The status the protected server answers to `token` (a GET on /mcp). */
async function statusWith(url: string, token: string): Promise<number> {
  const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  await response.body?.cancel();
  return response.status;
}

Deno.test("oauth: an expired access token is refreshed without the browser", async () => {
  await using setup = await startOAuth({ as: ["--access-token-ttl", "2"] });
  {
    await using first = await connectProxy(setup.args(), browserEnv());
    assert.equal(await simple(first), SIMPLE);
  }
  const stored = (await setup.tokens())!;
  // Make the proxy believe the token is fresh, so that only the server's 401 tells it otherwise.
  const file = join(await setup.serverDir(), "tokens.json");
  await Deno.writeTextFile(
    file,
    JSON.stringify({ ...stored, expires_at: Date.now() + 3_600_000 }),
  );
  await waitFor(
    async () => await statusWith(setup.server.url, stored.access_token) === 401,
    10_000,
  );
  const before = await setup.as.stats();
  const invalidBefore = (await setup.server.stats()).auth.invalid;

  await using second = await connectProxy(
    setup.args("--auth-timeout", "5s"),
    browserEnv("never"),
  );
  assert.equal(await simple(second), SIMPLE);
  const after = await setup.as.stats();
  assert.ok(
    (after.grants.refresh_token ?? 0) > (before.grants.refresh_token ?? 0),
    "the refresh token was used",
  );
  assert.equal(after.requests.authorization, 1, "no new browser flow");
  assert.ok((await setup.server.stats()).auth.invalid > invalidBefore, "the expired token got 401");
  const now = (await setup.tokens())!;
  assert.notEqual(now.access_token, stored.access_token, "a new access token is stored");
  assert.ok(!second.stderr.some((line) => line.includes("in your browser")));
});

Deno.test("oauth: a token known to have expired is refreshed before it is sent", async () => {
  await using setup = await startOAuth();
  {
    await using first = await connectProxy(setup.args(), browserEnv());
    assert.equal(await simple(first), SIMPLE);
  }
  // The server would still accept it; the stored expiry says it is over.
  const stored = (await setup.tokens())!;
  const file = join(await setup.serverDir(), "tokens.json");
  await Deno.writeTextFile(file, JSON.stringify({ ...stored, expires_at: Date.now() - 1000 }));
  const challenges = (await setup.server.stats()).auth;
  await using second = await connectProxy(
    setup.args("--auth-timeout", "5s"),
    browserEnv("never"),
  );
  assert.equal(await simple(second), SIMPLE);
  const stats = await setup.as.stats();
  assert.equal(stats.grants.refresh_token, 1, "refreshed");
  assert.equal(stats.requests.authorization, 1, "no new browser flow");
  const auth = (await setup.server.stats()).auth;
  assert.equal(auth.invalid, challenges.invalid, "the old token was not sent");
  assert.equal(auth.challenges, challenges.challenges, "no request went without a token");
  assert.equal(auth.tokens.length, 2, "only the new token was used");
});

Deno.test("oauth: a short-lived access token is not refreshed on every request", async () => {
  await using setup = await startOAuth({ as: ["--access-token-ttl", "20"] });
  await using client = await connectProxy(setup.args(), browserEnv());
  for (let i = 0; i < 5; i++) assert.equal(await simple(client), SIMPLE);
  const stats = await setup.as.stats();
  const accepted = (await setup.server.stats()).auth.accepted;
  assert.ok(
    (stats.grants.refresh_token ?? 0) <= 1,
    `a 20 s token was refreshed ${stats.grants.refresh_token} times in ${accepted} requests`,
  );
});

Deno.test("oauth: a revoked refresh token leads to a new authorization in the browser", async () => {
  await using setup = await startOAuth();
  await using client = await connectProxy(setup.args(), browserEnv());
  assert.equal(await simple(client), SIMPLE);
  await setup.as.admin("revoke");
  await setup.server.admin("revoke-tokens");
  assert.equal(await simple(client), SIMPLE, "the call goes through after authorizing again");
  const stats = await setup.as.stats();
  assert.equal(stats.tokenErrors.invalid_grant, 1, "the refresh was refused");
  assert.equal(stats.requests.authorization, 2, "the browser was opened again");
  assert.equal(stats.grants.authorization_code, 2);
  assert.equal(stats.registrations.length, 1, "the registration is kept");
  assert.ok(
    client.stderr.some((line) => /refresh token was refused; authorizing again/.test(line)),
  );
});

Deno.test("oauth: a rotated refresh token is saved, and the old one is dead", async () => {
  await using setup = await startOAuth();
  await using client = await connectProxy(setup.args(), browserEnv());
  assert.equal(await simple(client), SIMPLE);
  const file = join(await setup.serverDir(), "tokens.json");
  const textBefore = await Deno.readTextFile(file);
  const before = JSON.parse(textBefore);
  await setup.server.admin("revoke-tokens");
  assert.equal(await simple(client), SIMPLE);
  const textAfter = await Deno.readTextFile(file);
  const after = JSON.parse(textAfter);
  assert.notEqual(textAfter, textBefore, "tokens.json was rewritten");
  assert.ok(after.refresh_token, "a refresh token is kept");
  assert.notEqual(after.refresh_token, before.refresh_token, "the rotated one");
  assert.equal((await setup.as.stats()).grants.refresh_token, 1);
  // The old refresh token no longer works at the authorization server.
  const { client_id } = (await setup.client())!;
  const response = await fetch(`${setup.as.issuer}/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "refresh_token",
      refresh_token: before.refresh_token,
      client_id: client_id!,
    }),
  });
  assert.equal(response.status, 400);
  assert.equal((await response.json()).error, "invalid_grant");
});

Deno.test("oauth: a 401 on tools/call mid-session is recovered transparently", async () => {
  await using setup = await startOAuth({ server: ["--fail-tools-call", "1"] });
  await using client = await connectProxy(setup.args(), browserEnv());
  await client.listTools();
  assert.equal(await simple(client), SIMPLE);
  assert.equal(await simple(client), SIMPLE);
  const auth = (await setup.server.stats()).auth;
  // The tools/call got 401; on a busy machine the GET stream may open only after that with the
  // revoked token and get its own 401. Either way one refresh serves both.
  assert.ok(auth.invalid === 1 || auth.invalid === 2, `tools/call got 401 (${auth.invalid})`);
  assert.equal(auth.tokens.length, 2, "and was retried with a new token");
  const stats = await setup.as.stats();
  assert.equal(stats.grants.refresh_token, 1, "by a refresh");
  assert.equal(stats.requests.authorization, 1, "not by the browser");
});

Deno.test("oauth: 403 insufficient_scope steps up to the union of the scopes", async () => {
  await using setup = await startOAuth({ server: ["--tools-call-scope", "mcp:write"] });
  await using client = await connectProxy(setup.args(), browserEnv());
  await client.listTools();
  assert.equal(await simple(client), SIMPLE);
  const stats = await setup.as.stats();
  assert.equal(stats.requests.authorization, 2, "a second authorization for more scope");
  assert.equal(stats.authorizations[0]?.scope, "mcp:read");
  const stepped = new Set(stats.authorizations[1]?.scope?.split(" "));
  assert.ok(stepped.has("mcp:read") && stepped.has("mcp:write"), "the union of the scopes");
  const auth = (await setup.server.stats()).auth;
  assert.equal(auth.forbidden, 1, "one 403");
  const scopes = new Set((await setup.tokens())?.scope?.split(" "));
  assert.ok(scopes.has("mcp:write"), "the stored token carries the new scope");
  // And it sticks: no more step-ups.
  assert.equal(await simple(client), SIMPLE);
  assert.equal((await setup.as.stats()).requests.authorization, 2);
});

Deno.test("oauth: transient token endpoint failures are retried, the user stays logged in", async () => {
  await using setup = await startOAuth();
  await using client = await connectProxy(setup.args(), browserEnv());
  assert.equal(await simple(client), SIMPLE);
  await setup.as.admin("fail", {
    endpoint: "token",
    count: 2,
    status: 503,
    error: "temporarily_unavailable",
  });
  await setup.server.admin("revoke-tokens");
  assert.equal(await simple(client), SIMPLE);
  const stats = await setup.as.stats();
  assert.equal(stats.tokenErrors.temporarily_unavailable, 2, "both failures were seen");
  assert.equal(stats.grants.refresh_token, 1, "the third try refreshed");
  assert.equal(stats.requests.authorization, 1, "no new authorization");
  assert.ok((await setup.tokens())?.refresh_token, "the refresh token is kept");
  assert.ok(client.stderr.some((line) => /retrying in \d+ ms/.test(line)));
});

Deno.test("oauth: tokens, codes, verifiers and client secrets never reach stderr, even with --debug", async () => {
  await using setup = await startOAuth();
  const client = await connectProxy(
    setup.args(
      "--debug",
      "--static-oauth-client-metadata",
      '{"token_endpoint_auth_method":"client_secret_basic"}',
    ),
    browserEnv(),
  );
  let stderr: string;
  const secrets: string[] = [];
  try {
    assert.equal(await simple(client), SIMPLE);
    const first = (await setup.tokens())!;
    secrets.push(first.access_token, first.refresh_token!);
    await setup.server.admin("revoke-tokens");
    assert.equal(await simple(client), SIMPLE);
  } finally {
    stderr = await client.finish();
  }
  const last = (await setup.tokens())!;
  secrets.push(last.access_token, last.refresh_token!);
  const registration = (await setup.client())!;
  assert.ok(registration.client_secret, "a confidential client was registered");
  secrets.push(registration.client_secret);
  const stats = await setup.as.stats();
  assert.equal(stats.tokens[0]?.auth_method, "client_secret_basic");
  for (const token of stats.tokens) {
    for (const key of ["code", "code_verifier", "refresh_token"]) {
      if (typeof token[key] === "string") secrets.push(token[key] as string);
    }
  }
  assert.ok(secrets.length >= 7, `collected ${secrets.length} secrets`);
  assert.match(stderr, /debug: /, "--debug was on");
  for (const secret of secrets) {
    assert.ok(secret.length >= 16);
    assert.ok(!stderr.includes(secret), `a secret leaked: ${secret.slice(0, 6)}...`);
  }
});

Deno.test("oauth: concurrent requests share one refresh", async () => {
  await using setup = await startOAuth();
  await using client = await connectProxy(setup.args(), browserEnv());
  assert.equal(await simple(client), SIMPLE);
  await setup.server.admin("revoke-tokens");
  const results = await Promise.all(Array.from({ length: 5 }, () => simple(client)));
  assert.deepEqual(results, Array(5).fill(SIMPLE));
  const stats = await setup.as.stats();
  assert.equal(stats.grants.refresh_token, 1, "one refresh for all of them");
  assert.equal(stats.tokenErrors.invalid_grant, undefined);
  assert.equal(stats.requests.authorization, 1);
});

Deno.test("oauth: two instances refreshing at once use the rotating refresh token once", async () => {
  await using setup = await startOAuth();
  await using first = await connectProxy(setup.args(), browserEnv());
  assert.equal(await simple(first), SIMPLE);
  await using second = await connectProxy(setup.args(), browserEnv());
  assert.equal(await simple(second), SIMPLE);
  await setup.server.admin("revoke-tokens");
  // Both hold the same refresh token; reusing a rotated one would revoke the whole grant.
  assert.deepEqual(await Promise.all([simple(first), simple(second)]), [SIMPLE, SIMPLE]);
  const stats = await setup.as.stats();
  assert.equal(stats.grants.refresh_token, 1, "one refresh, shared through the store");
  assert.equal(stats.tokenErrors.invalid_grant, undefined, "the rotated token was not reused");
  assert.equal(stats.requests.authorization, 1, "no new browser flow");
});

Deno.test("oauth: a registration the server forgot is replaced by a new one", async () => {
  await using setup = await startOAuth();
  await using client = await connectProxy(setup.args(), browserEnv());
  assert.equal(await simple(client), SIMPLE);
  const before = (await setup.client())!;
  await setup.as.admin("forget-clients");
  await setup.as.admin("revoke");
  await setup.server.admin("revoke-tokens");
  assert.equal(await simple(client), SIMPLE, "works again after registering again");
  const stats = await setup.as.stats();
  assert.equal(stats.registrations.length, 2, "registered again");
  assert.equal(stats.requests.authorization, 2, "and authorized in the browser");
  assert.notEqual((await setup.client())?.client_id, before.client_id);
});

Deno.test("oauth: a new authorization keeps the scopes stepped up to before", async () => {
  await using setup = await startOAuth({ server: ["--tools-call-scope", "mcp:write"] });
  await using client = await connectProxy(setup.args(), browserEnv());
  assert.equal(await simple(client), SIMPLE);
  assert.equal((await setup.as.stats()).requests.authorization, 2, "stepped up once");
  // Everything is revoked: the next call needs a new authorization, for the same scopes.
  await setup.as.admin("revoke");
  await setup.server.admin("revoke-tokens");
  assert.equal(await simple(client), SIMPLE, "the call after the new authorization works");
  const stats = await setup.as.stats();
  const third = new Set(stats.authorizations[2]?.scope?.split(" "));
  assert.ok(third.has("mcp:write"), `asked again for mcp:write (got "${[...third]}")`);
  assert.equal(stats.requests.authorization, 3, "one new authorization, no second step-up");
});
