// OAuth in connect and serve <url>, end to end: the browser flow against a real authorization
// server (oidc-provider) and a protected MCP server, with tests/fixtures/browser.ts as $BROWSER.

import assert from "node:assert/strict";
import { join } from "node:path";
import { startServe } from "./support/cli.ts";
import { connectHttp, textOf } from "./support/client.ts";
import { browserEnv, connectFails, connectProxy, freePort, startOAuth } from "./support/oauth.ts";
import type { Client } from "./support/sdk.ts";

const SIMPLE = "This is a simple text response for testing.";

async function simple(client: Client): Promise<string> {
  return textOf(await client.callTool({ name: "test_simple_text", arguments: {} }));
}

Deno.test("oauth: the first run registers once, opens the browser once, and stores tokens", async () => {
  await using setup = await startOAuth();
  await using client = await connectProxy(setup.args(), browserEnv());
  assert.equal(await simple(client), SIMPLE);

  const stats = await setup.as.stats();
  assert.equal(stats.requests.authorization, 1, "the browser was sent to the server once");
  assert.equal(stats.registrations.length, 1, "one dynamic registration");
  assert.equal(stats.grants.authorization_code, 1);
  const [request] = stats.authorizations;
  assert.ok(request);
  assert.equal(request.code_challenge_method, "S256");
  assert.ok(request.state && request.state.length >= 20, "a random state");
  assert.equal(request.resource, setup.server.url, "RFC 8707 resource on the authorization");
  assert.equal(request.scope, "mcp:read", "the scope from the challenge");
  assert.match(request.redirect_uri!, /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
  const [token] = stats.tokens;
  assert.equal(token?.resource, setup.server.url, "RFC 8707 resource on the token request");
  assert.ok(token?.code_verifier, "PKCE verifier sent");

  const stored = await setup.tokens();
  const registration = await setup.client();
  assert.ok(stored?.access_token && stored.refresh_token, "tokens stored");
  assert.equal(registration?.client_id, request.client_id, "the registration is stored");
  assert.equal(registration?.redirect_uri, request.redirect_uri);
  const auth = (await setup.server.stats()).auth;
  assert.equal(auth.challenges, 1, "one 401 started it all");
  assert.equal(auth.tokens.length, 1);
  assert.equal(auth.tokens[0]?.client_id, request.client_id);
  assert.ok(
    client.stderr.some((line) =>
      line.includes("in your browser: ") && line.includes(`state=${request.state}`)
    ),
    "the authorization URL is printed",
  );
});

Deno.test("oauth: the second run reuses the stored tokens, no browser, no registration", async () => {
  await using setup = await startOAuth();
  {
    await using first = await connectProxy(setup.args(), browserEnv());
    assert.equal(await simple(first), SIMPLE);
  }
  const before = await setup.tokens();
  // "never": a browser flow now would hang until --auth-timeout.
  await using second = await connectProxy(
    setup.args("--auth-timeout", "5s"),
    browserEnv("never"),
  );
  assert.equal(await simple(second), SIMPLE);
  const stats = await setup.as.stats();
  assert.equal(stats.requests.authorization, 1, "the browser was not opened again");
  assert.equal(stats.registrations.length, 1);
  assert.equal(stats.grants.authorization_code, 1);
  assert.equal(stats.grants.refresh_token, undefined, "a fresh token needs no refresh");
  assert.deepEqual(await setup.tokens(), before);
  assert.ok(!second.stderr.some((line) => line.includes("in your browser")));
});

Deno.test("oauth: stored files are 0600 and folders 0700", {
  ignore: Deno.build.os === "windows",
}, async () => {
  await using setup = await startOAuth();
  await using client = await connectProxy(setup.args(), browserEnv());
  assert.equal(await simple(client), SIMPLE);
  const dir = await setup.serverDir();
  for (const folder of [setup.configDir, join(setup.configDir, "servers"), dir]) {
    const { mode, isDirectory } = await Deno.stat(folder);
    assert.ok(isDirectory);
    assert.equal((mode! & 0o777).toString(8), "700", folder);
  }
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  for (const name of ["tokens.json", "client.json"]) assert.ok(names.includes(name), name);
  for (const name of names) {
    assert.ok(!name.endsWith(".tmp"), `no temporary file left: ${name}`);
    const { mode, isFile } = await Deno.stat(join(dir, name));
    assert.ok(isFile);
    assert.equal((mode! & 0o777).toString(8), "600", name);
  }
});

Deno.test("oauth: two instances started at once run one browser flow between them", async () => {
  await using setup = await startOAuth();
  const started = await Promise.allSettled([
    connectProxy(setup.args(), browserEnv()),
    connectProxy(setup.args(), browserEnv()),
  ]);
  await using stack = new AsyncDisposableStack();
  for (const result of started) if (result.status === "fulfilled") stack.use(result.value);
  for (const result of started) if (result.status === "rejected") throw result.reason;
  const clients = started.map((result) => (result as PromiseFulfilledResult<Client>).value);
  for (const client of clients) assert.equal(await simple(client), SIMPLE);
  const stats = await setup.as.stats();
  assert.equal(stats.requests.authorization, 1, "one browser flow");
  assert.equal(stats.registrations.length, 1, "one registration");
  assert.equal(stats.grants.authorization_code, 1);
});

Deno.test("oauth: a stale lock left by a dead process is broken", async () => {
  await using setup = await startOAuth();
  {
    await using first = await connectProxy(setup.args(), browserEnv());
    assert.equal(await simple(first), SIMPLE);
  }
  const lock = join(await setup.serverDir(), "flow.lock");
  await Deno.writeTextFile(lock, "999999\n");
  const old = new Date(Date.now() - 120_000);
  await Deno.utime(lock, old, old);
  // The stored access token is refused now, so the next run must take the lock to refresh.
  await setup.server.admin("revoke-tokens");
  const began = Date.now();
  await using second = await connectProxy(
    setup.args("--auth-timeout", "5s"),
    browserEnv("never"),
  );
  assert.equal(await simple(second), SIMPLE);
  assert.ok(Date.now() - began < 10_000, "the stale lock was not waited out");
  assert.ok(second.stderr.some((line) => /breaking a stale lock/.test(line)), "said so");
  const stats = await setup.as.stats();
  assert.equal(stats.grants.refresh_token, 1, "refreshed under the lock");
  assert.equal(stats.requests.authorization, 1, "no new browser flow");
  await assert.rejects(Deno.stat(lock), Deno.errors.NotFound, "the lock is released");
});

Deno.test("oauth: static client info (inline JSON) skips registration", async () => {
  const port = freePort();
  const client = {
    client_id: "static-public",
    token_endpoint_auth_method: "none",
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    redirect_uris: [`http://127.0.0.1:${port}/callback`],
  };
  await using setup = await startOAuth({
    as: ["--no-registration", "--client", JSON.stringify(client)],
  });
  await using proxy = await connectProxy(
    setup.args(
      "--static-oauth-client-info",
      '{"client_id":"static-public"}',
      "--callback-port",
      String(port),
    ),
    browserEnv(),
  );
  assert.equal(await simple(proxy), SIMPLE);
  const stats = await setup.as.stats();
  assert.equal(stats.requests.registration, undefined, "no registration attempted");
  assert.equal(stats.authorizations[0]?.client_id, "static-public");
  assert.equal(stats.tokens[0]?.client_id, "static-public");
  assert.equal(stats.tokens[0]?.auth_method, "none");
});

Deno.test("oauth: static client info from @file, with a secret sent as client_secret_post", async () => {
  const port = freePort();
  const secret = "static-post-secret-4f9c2e7a1b";
  const client = {
    client_id: "static-post",
    client_secret: secret,
    token_endpoint_auth_method: "client_secret_post",
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    redirect_uris: [`http://127.0.0.1:${port}/callback`],
  };
  await using setup = await startOAuth({
    as: ["--no-registration", "--client", JSON.stringify(client)],
  });
  const file = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(
      file,
      JSON.stringify({
        client_id: "static-post",
        client_secret: secret,
        token_endpoint_auth_method: "client_secret_post",
      }),
    );
    const proxy = await connectProxy(
      setup.args("--static-oauth-client-info", `@${file}`, "--callback-port", String(port)),
      browserEnv(),
    );
    assert.equal(await simple(proxy), SIMPLE);
    const stderr = await proxy.finish();
    const stats = await setup.as.stats();
    assert.equal(stats.requests.registration, undefined, "no registration attempted");
    assert.equal(stats.tokens[0]?.client_id, "static-post");
    assert.equal(stats.tokens[0]?.client_secret, "[redacted]", "the secret went in the body");
    assert.equal(stats.grants.authorization_code, 1);
    assert.ok(!stderr.includes(secret), "the client secret never reaches the log");
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("oauth: --auth-timeout ends a flow nobody completes with a JSON-RPC error", async () => {
  await using setup = await startOAuth();
  const { error, ms, stderr } = await connectFails(
    setup.args("--auth-timeout", "2s"),
    browserEnv("never"),
  );
  assert.equal(error.code, -32000);
  assert.match(error.message, /--auth-timeout/);
  assert.ok(ms >= 2000, `waited for the timeout (${ms} ms)`);
  assert.ok(ms < 12_000, `answered soon after the timeout (${ms} ms)`);
  const lines = stderr.split("\n").filter((line) => /--auth-timeout/.test(line));
  assert.equal(lines.length, 1, `one clear line:\n${stderr}`);
  assert.match(lines[0]!, /no authorization within 2s/);
  assert.ok(stderr.includes("in your browser: http://127.0.0.1:"), "the URL was printed");
  assert.equal(await setup.tokens(), undefined);
});

Deno.test("oauth: a callback whose state does not match is refused", async () => {
  await using setup = await startOAuth();
  const { error, stderr } = await connectFails(setup.args(), browserEnv("wrong-state"));
  assert.equal(error.code, -32000);
  assert.match(error.message, /state/i);
  const stats = await setup.as.stats();
  assert.equal(stats.requests.authorization, 1);
  assert.equal(stats.requests.token, undefined, "the code was never exchanged");
  assert.equal(await setup.tokens(), undefined);
  assert.match(stderr, /state/i);
});

Deno.test("oauth: denied consent is a clear error", async () => {
  await using setup = await startOAuth();
  const { error, stderr } = await connectFails(setup.args(), browserEnv("deny"));
  assert.equal(error.code, -32000);
  assert.match(error.message, /the authorization was refused: access_denied/);
  const stats = await setup.as.stats();
  assert.equal(stats.requests.token, undefined);
  assert.equal(await setup.tokens(), undefined);
  assert.match(stderr, /access_denied/);
});

Deno.test("oauth: an Authorization --header turns OAuth off", async () => {
  await using setup = await startOAuth();
  const { error, stderr } = await connectFails(
    setup.args("--header", "Authorization: Bearer not-a-real-token"),
    browserEnv(),
  );
  assert.equal(error.code, -32000);
  assert.match(error.message, /401/);
  const stats = await setup.as.stats();
  // (The protected server itself fetches the metadata, for the JWKS that checks tokens.)
  for (const endpoint of ["registration", "authorization", "token"]) {
    assert.equal(stats.requests[endpoint], undefined, `no ${endpoint} request`);
  }
  const auth = (await setup.server.stats()).auth;
  assert.ok(auth.invalid >= 1, "the header's token was sent and refused");
  assert.equal(auth.metadata, 0, "no discovery");
  assert.ok(!stderr.includes("in your browser"));
  assert.ok(!stderr.includes("not-a-real-token"), "the header value is redacted");
  await assert.rejects(Deno.stat(setup.configDir), Deno.errors.NotFound, "nothing stored");
});

Deno.test("oauth: serve <url> shares one browser flow between its sessions", async () => {
  await using setup = await startOAuth();
  await using proxy = await startServe(setup.args(), undefined, { env: browserEnv() });
  const started = await Promise.allSettled([
    connectHttp(proxy.mcpUrl),
    connectHttp(proxy.mcpUrl),
  ]);
  await using stack = new AsyncDisposableStack();
  for (const result of started) if (result.status === "fulfilled") stack.use(result.value);
  for (const result of started) if (result.status === "rejected") throw result.reason;
  const clients = started.map((result) => (result as PromiseFulfilledResult<Client>).value);
  for (const client of clients) assert.equal(await simple(client), SIMPLE);
  await using third = await connectHttp(proxy.mcpUrl);
  assert.equal(await simple(third), SIMPLE);
  const stats = await setup.as.stats();
  assert.equal(stats.requests.authorization, 1, "one browser flow for every session");
  assert.equal(stats.registrations.length, 1);
  assert.equal((await setup.server.stats()).initialized, 3, "three remote sessions");
  assert.ok((await setup.tokens())?.access_token, "stored for the next run");
});

/** Where the metadata is: the protected server's and the authorization server's flags. */
const DISCOVERY: Array<[string, { as?: string[]; server?: string[] }]> = [
  ["resource metadata at the root, no resource_metadata in the challenge", {
    server: ["--metadata-at", "root", "--no-challenge-metadata"],
  }],
  ["path-aware resource metadata, no resource_metadata in the challenge", {
    server: ["--no-challenge-metadata"],
  }],
  ["an issuer with a path, RFC 8414 metadata only", {
    as: ["--issuer-path", "/tenant", "--metadata", "oauth"],
  }],
  ["an issuer with a path, OpenID Connect metadata only", {
    as: ["--issuer-path", "/tenant", "--metadata", "oidc"],
  }],
];

Deno.test("oauth: discovery finds the authorization server wherever it is published", async (t) => {
  for (const [name, flags] of DISCOVERY) {
    await t.step(name, async () => {
      await using setup = await startOAuth(flags);
      await using client = await connectProxy(setup.args(), browserEnv());
      assert.equal(await simple(client), SIMPLE);
      assert.equal(await setup.as.authorizations(), 1);
      assert.ok((await setup.server.stats()).auth.metadata >= 1, "resource metadata was read");
    });
  }
});
