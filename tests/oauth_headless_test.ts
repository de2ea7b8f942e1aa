// OAuth without a browser, end to end: the client-credentials grant (client_secret_basic,
// client_secret_post, private_key_jwt with ES256 and RS256), SEP-990 cross-app access, and a token
// endpoint that redirects to another origin.

import assert from "node:assert/strict";
import { textOf } from "./support/client.ts";
import {
  browserEnv,
  connectFails,
  connectProxy,
  startAuthServer,
  startOAuth,
} from "./support/oauth.ts";
import type { Client } from "./support/sdk.ts";
import { browse } from "./fixtures/browser.ts";

const SIMPLE = "This is a simple text response for testing.";
const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
/** No browser may be needed: one that never completes would show as an --auth-timeout. */
const NO_BROWSER = browserEnv("never");

function encodeBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function encodeBase64Url(bytes: Uint8Array): string {
  return encodeBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function simple(client: Client): Promise<string> {
  return textOf(await client.callTool({ name: "test_simple_text", arguments: {} }));
}

/** Client metadata for the client-credentials grant only. */
function machineClient(clientId: string, extra: Record<string, unknown>): string {
  return JSON.stringify({
    client_id: clientId,
    grant_types: ["client_credentials"],
    response_types: [],
    redirect_uris: [],
    ...extra,
  });
}

for (const method of ["client_secret_basic", "client_secret_post"]) {
  Deno.test(`oauth: client credentials with ${method}`, async () => {
    const secret = `${method}-secret-9d1e4b7c5a`;
    await using setup = await startOAuth({
      as: [
        "--client",
        machineClient("machine", { client_secret: secret, token_endpoint_auth_method: method }),
      ],
    });
    const client = await connectProxy(
      setup.args("--client-id", "machine", "--client-secret", secret, "--debug"),
      NO_BROWSER,
    );
    let stderr: string;
    try {
      assert.equal(await simple(client), SIMPLE);
    } finally {
      stderr = await client.finish();
    }
    const stats = await setup.as.stats();
    assert.equal(stats.grants.client_credentials, 1);
    // The fixture accepts either way of sending a secret for a client registered with one of
    // them; it records whether the secret came in the body.
    assert.equal(stats.tokens[0]?.auth_method, method);
    if (method === "client_secret_basic") {
      assert.equal(stats.tokens[0]?.client_secret, undefined, "sent in the header");
    }
    assert.equal(stats.tokens[0]?.resource, setup.server.url, "RFC 8707 resource");
    assert.equal(stats.requests.authorization, undefined, "no browser");
    assert.equal(stats.requests.registration, undefined, "no registration");
    const auth = (await setup.server.stats()).auth;
    assert.equal(auth.tokens[0]?.client_id, "machine");
    assert.ok(!stderr.includes(secret), "the secret never reaches the log");
  });
}

/** A PKCS#8 PEM private key and the public JWK, for private_key_jwt. */
async function keyPair(alg: "ES256" | "RS256"): Promise<{ pem: string; jwk: JsonWebKey }> {
  const algorithm = alg === "ES256" ? { name: "ECDSA", namedCurve: "P-256" } : {
    name: "RSASSA-PKCS1-v1_5",
    modulusLength: 2048,
    publicExponent: new Uint8Array([1, 0, 1]),
    hash: "SHA-256",
  };
  const pair = await crypto.subtle.generateKey(algorithm, true, ["sign", "verify"]);
  const der = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const body = encodeBase64(der).replace(/.{64}/g, "$&\n");
  const pem = `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`;
  const jwk = await crypto.subtle.exportKey("jwk", pair.publicKey);
  return { pem, jwk: { ...jwk, alg, use: "sig", kid: `${alg}-key` } as JsonWebKey };
}

Deno.test("oauth: client credentials with private_key_jwt (ES256 and RS256)", async (t) => {
  const keys = { ES256: await keyPair("ES256"), RS256: await keyPair("RS256") };
  const clients = Object.entries(keys).flatMap(([alg, { jwk }]) => [
    "--client",
    machineClient(`machine-${alg}`, {
      token_endpoint_auth_method: "private_key_jwt",
      token_endpoint_auth_signing_alg: alg,
      jwks: { keys: [jwk] },
    }),
  ]);
  await using setup = await startOAuth({ as: clients });
  for (const [alg, { pem }] of Object.entries(keys)) {
    await t.step(alg, async () => {
      const dir = await Deno.makeTempDir();
      try {
        const file = `${dir}/key.pem`;
        await Deno.writeTextFile(file, pem, { mode: 0o600 });
        await using client = await connectProxy(
          [
            setup.server.url,
            "--config-dir",
            `${dir}/config`,
            "--client-id",
            `machine-${alg}`,
            "--client-private-key",
            `@${file}`,
          ],
          NO_BROWSER,
        );
        assert.equal(await simple(client), SIMPLE);
        const stats = await setup.as.stats();
        const token = stats.tokens.findLast((entry) => entry.client_id === `machine-${alg}`);
        assert.equal(token?.status, 200);
        assert.equal(token?.auth_method, "private_key_jwt");
        assert.equal(token?.grant_type, "client_credentials");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
  const stats = await setup.as.stats();
  assert.equal(stats.grants.client_credentials, 2);
  assert.equal(stats.requests.authorization, undefined);
});

/** Signs in at `idp` as `login` through the headless browser and returns the ID token. */
async function idToken(issuer: string, clientId: string, callback: string): Promise<string> {
  const verifier = encodeBase64Url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  const url = new URL(`${issuer}/auth`);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: clientId,
    redirect_uri: callback,
    scope: "openid",
    state: "xaa-test",
    code_challenge: encodeBase64Url(new Uint8Array(digest)),
    code_challenge_method: "S256",
  }).toString();
  const { callback: landed } = await browse(url.href, { login: "alice" });
  const code = landed?.searchParams.get("code");
  assert.ok(code, `the IdP sent a code: ${landed}`);
  const response = await fetch(`${issuer}/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: callback,
      code_verifier: verifier,
      client_id: clientId,
    }),
  });
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  assert.equal(typeof body.id_token, "string");
  return body.id_token;
}

Deno.test("oauth: SEP-990 cross-app access trades the IdP's ID token for an access token", async () => {
  // The redirect_uri of the sign-in at the IdP (the test's own, not the proxy's).
  await using landing = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("signed in"),
  );
  const callback = `http://127.0.0.1:${landing.addr.port}/callback`;
  await using idp = await startAuthServer([
    "--client",
    JSON.stringify({
      client_id: "xaa-app",
      token_endpoint_auth_method: "none",
      grant_types: ["authorization_code", TOKEN_EXCHANGE],
      response_types: ["code"],
      redirect_uris: [callback],
    }),
  ]);
  const secret = "xaa-app-secret-83c1f0e2d7";
  await using setup = await startOAuth({
    as: [
      "--trust-idp",
      idp.issuer,
      "--client",
      JSON.stringify({
        client_id: "xaa-app",
        client_secret: secret,
        token_endpoint_auth_method: "client_secret_basic",
        grant_types: [JWT_BEARER],
        response_types: [],
        redirect_uris: [],
      }),
    ],
  });
  const token = await idToken(idp.issuer, "xaa-app", callback);
  const client = await connectProxy(
    setup.args(
      "--client-id",
      "xaa-app",
      "--client-secret",
      secret,
      "--idp-token-url",
      `${idp.issuer}/token`,
      "--idp-client-id",
      "xaa-app",
      "--idp-id-token",
      token,
      "--debug",
    ),
    NO_BROWSER,
  );
  let stderr: string;
  try {
    assert.equal(await simple(client), SIMPLE);
  } finally {
    stderr = await client.finish();
  }
  const idpStats = await idp.stats();
  assert.equal(idpStats.grants[TOKEN_EXCHANGE], 1, "the ID token was exchanged for an ID-JAG");
  const exchange = idpStats.tokens.find((entry) => entry.grant_type === TOKEN_EXCHANGE);
  assert.equal(exchange?.audience, setup.as.issuer);
  assert.equal(exchange?.resource, setup.server.url);
  const stats = await setup.as.stats();
  assert.equal(stats.grants[JWT_BEARER], 1, "the ID-JAG was traded for an access token");
  assert.equal(stats.requests.authorization, undefined, "no browser");
  const auth = (await setup.server.stats()).auth;
  assert.equal(auth.tokens[0]?.sub, "alice", "on behalf of the user who signed in at the IdP");
  assert.equal(auth.tokens[0]?.client_id, "xaa-app");
  assert.ok(!stderr.includes(token), "the ID token never reaches the log");
  assert.ok(!stderr.includes(secret), "nor the client secret");
});

Deno.test("oauth: a token endpoint redirecting to another origin is not followed", async (t) => {
  const secret = "redirect-secret-5b2e9a0c71";
  await using setup = await startOAuth({
    as: [
      "--client",
      machineClient("machine", {
        client_secret: secret,
        token_endpoint_auth_method: "client_secret_basic",
      }),
    ],
  });
  let redirected = 0;
  const target = `${setup.as.issuer}/token`;
  await using redirector = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    redirected++;
    return new Response(null, { status: 307, headers: { location: target } });
  });
  const tokenUrl = `http://127.0.0.1:${redirector.addr.port}/token`;
  const { error, stderr } = await connectFails(
    setup.args("--client-id", "machine", "--client-secret", secret, "--token-url", tokenUrl),
    NO_BROWSER,
  );
  await t.step("refused", async () => {
    assert.equal(error.code, -32000);
    assert.match(error.message, /the client credentials grant failed/);
    assert.ok(redirected >= 1, "the proxy asked the configured token endpoint");
    const stats = await setup.as.stats();
    assert.equal(stats.requests.token, undefined, "the redirect to the other origin was refused");
    assert.equal(stats.grants.client_credentials, undefined);
    assert.equal(await setup.tokens(), undefined);
    assert.ok(!stderr.includes(secret));
  });
  await t.step("the error names what the token endpoint answered", () => {
    assert.doesNotMatch(error.message, /\[object Response\]/);
    assert.match(error.message, /307/);
  });
});
