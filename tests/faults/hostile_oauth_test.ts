// A hostile remote server against connect's OAuth and headers: a 401 challenge pointing its
// metadata at another server's (or at a local file), a token endpoint that redirects the refresh
// elsewhere, and an MCP endpoint that redirects to another origin with our --header secrets.

import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ServerStore } from "../../src/oauth/store.ts";
import { runCli } from "../support/cli.ts";
import { initializeJson } from "../support/client.ts";
import { tempDir } from "../support/gateway.ts";
import { startRecorder } from "../support/hostile.ts";
import { browserEnv, connectFails, startAuthServer, startOAuth } from "../support/oauth.ts";

const NO_BROWSER = browserEnv("never");

function challenge(metadataUrl: string): Response {
  return new Response("unauthorized", {
    status: 401,
    headers: { "www-authenticate": `Bearer resource_metadata="${metadataUrl}", scope="mcp:read"` },
  });
}

Deno.test("oauth: a 401 challenge pointing at another server's metadata is refused", async () => {
  // The victim: a real authorization server and the protected server it guards.
  await using setup = await startOAuth();
  const victim = new URL("/.well-known/oauth-protected-resource/mcp", setup.server.url).href;
  await using hostile = startRecorder(() => challenge(victim));
  const { error, ms, stderr } = await connectFails(
    [`${hostile.origin}/mcp`, "--config-dir", setup.configDir, "--auth-timeout", "5s"],
    NO_BROWSER,
  );
  assert.match(`${error.message}\n${stderr}`, /refusing to authorize/);
  assert.ok(ms < 5000, `refused at once, not after --auth-timeout (${ms} ms)`);
  const stats = await setup.as.stats();
  assert.equal(stats.requests.authorization, undefined, "no browser sent to the victim's server");
  assert.equal(stats.registrations.length, 0, "no client registered there");
  assert.equal(stats.requests.token, undefined);
  assert.ok(
    hostile.requests.every((request) => !request.headers.authorization),
    "the hostile server never got a token",
  );
});

Deno.test("oauth: a 401 challenge cannot make the proxy read a local file as its metadata", async () => {
  await using as = await startAuthServer();
  await using dir = await tempDir();
  const file = join(dir.path, "metadata.json");
  await using hostile = startRecorder((req) =>
    new URL(req.url).pathname === "/mcp"
      ? challenge(pathToFileURL(file).href)
      : new Response("not found", { status: 404 })
  );
  // Metadata that would work, if it were read: it names the hostile server and a real AS.
  await Deno.writeTextFile(
    file,
    JSON.stringify({ resource: `${hostile.origin}/mcp`, authorization_servers: [as.issuer] }),
  );
  const { stderr } = await connectFails(
    [`${hostile.origin}/mcp`, "--config-dir", join(dir.path, "config"), "--auth-timeout", "2s"],
    NO_BROWSER,
  );
  const stats = await as.stats();
  assert.deepEqual(
    { discovery: stats.requests.discovery, registrations: stats.registrations.length },
    { discovery: undefined, registrations: 0 },
    `the proxy read ${file} and followed it to the authorization server:\n${stderr}`,
  );
});

Deno.test("oauth: a refresh sent to a token endpoint that redirects elsewhere is not followed", async () => {
  const refreshToken = "refresh-secret-6c1d0e93";
  await using elsewhere = startRecorder(() =>
    Response.json({ access_token: "stolen", token_type: "bearer", expires_in: 3600 })
  );
  await using redirector = startRecorder(() =>
    new Response(null, { status: 307, headers: { location: `${elsewhere.origin}/token` } })
  );
  let origin = "";
  await using server = startRecorder((req) => {
    const path = new URL(req.url).pathname;
    if (path === "/.well-known/oauth-protected-resource/mcp") {
      return Response.json({ resource: `${origin}/mcp`, authorization_servers: [origin] });
    }
    if (path === "/.well-known/oauth-authorization-server") {
      return Response.json({
        issuer: origin,
        authorization_endpoint: `${origin}/authorize`,
        token_endpoint: `${redirector.origin}/token`,
        response_types_supported: ["code"],
        grant_types_supported: ["authorization_code", "refresh_token"],
        code_challenge_methods_supported: ["S256"],
        token_endpoint_auth_methods_supported: ["none"],
      });
    }
    if (path === "/mcp") return challenge(`${origin}/.well-known/oauth-protected-resource/mcp`);
    return new Response("not found", { status: 404 });
  });
  origin = server.origin;
  await using dir = await tempDir();
  const configDir = join(dir.path, "config");
  // A previous run left an expired access token, its refresh token and the registration.
  const store = await ServerStore.open(configDir, new URL(`${origin}/mcp`));
  const now = Date.now();
  await store.writeTokens({
    access_token: "expired-access",
    refresh_token: refreshToken,
    issued_at: now - 7_200_000,
    expires_at: now - 3_600_000,
  });
  await store.writeClient({ client_id: "cid", token_endpoint_auth_method: "none", issuer: origin });

  const { stderr } = await connectFails(
    [`${origin}/mcp`, "--config-dir", configDir, "--auth-timeout", "2s"],
    NO_BROWSER,
  );
  assert.ok(
    redirector.requests.some((request) => request.body.includes("grant_type=refresh_token")),
    `the refresh went to the token endpoint the metadata names:\n${stderr}`,
  );
  assert.deepEqual(elsewhere.requests, [], "the redirect was not followed");
  assert.ok(!stderr.includes(refreshToken), "the refresh token is not logged");
});

Deno.test("connect: a server redirecting to another origin does not get our --header secrets sent there", async () => {
  const secret = "sk-header-secret-77d1a0";
  await using elsewhere = startRecorder(() => new Response("not found", { status: 404 }));
  await using server = startRecorder(() =>
    new Response(null, { status: 307, headers: { location: `${elsewhere.origin}/mcp` } })
  );
  const initialize = initializeJson();
  const result = await runCli([
    "connect",
    `${server.origin}/mcp`,
    "--header",
    `X-Api-Key: ${secret}`,
    "--header",
    `Authorization: Bearer ${secret}-bearer`,
    "--header",
    `Cookie: session=${secret}-cookie`,
  ], { stdin: initialize + "\n" });
  assert.equal(result.code, 0, result.stderr);
  assert.ok(
    server.requests.some((request) => request.headers["x-api-key"] === secret),
    "the server itself got the header (the control)",
  );
  const leaked = elsewhere.requests.flatMap((request) =>
    Object.entries(request.headers).filter(([, value]) => value.includes(secret))
      .map(([name]) => `${request.method} ${new URL(request.url).pathname}: ${name}`)
  );
  assert.deepEqual(leaked, [], `--header values were sent to ${elsewhere.origin}`);
});
