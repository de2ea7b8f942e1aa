// WWW-Authenticate parsing: the Bearer challenge among others, quoted and bare values, escapes.

import assert from "node:assert/strict";
import { parseBearerChallenge } from "../src/oauth/challenge.ts";

Deno.test("oauth: the Bearer challenge's parameters are read from any WWW-Authenticate", async (t) => {
  const cases: Array<[string | null, ReturnType<typeof parseBearerChallenge>]> = [
    [null, undefined],
    ["", undefined],
    ['Basic realm="x"', undefined],
    ["Bearer", {}],
    ['Bearer realm="mcp"', {}],
    [
      'Bearer resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp", scope="mcp:basic"',
      {
        resourceMetadata: "https://mcp.example/.well-known/oauth-protected-resource/mcp",
        scope: "mcp:basic",
      },
    ],
    [
      'Bearer error="invalid_token", error_description="The token expired", scope="a b"',
      { error: "invalid_token", errorDescription: "The token expired", scope: "a b" },
    ],
    ["bearer error=insufficient_scope, scope=write", {
      error: "insufficient_scope",
      scope: "write",
    }],
    ['Basic realm="x", Bearer scope="s"', { scope: "s" }],
    ['DPoP algs="ES256", Bearer error="insufficient_scope", scope="x y"', {
      error: "insufficient_scope",
      scope: "x y",
    }],
    ['Bearer scope="a", DPoP algs="ES256"', { scope: "a" }],
    ['Bearer error_description="say \\"hi\\"", error="invalid_token"', {
      error: "invalid_token",
      errorDescription: 'say "hi"',
    }],
    ['Bearer scope=""', { scope: "" }],
  ];
  for (const [header, expected] of cases) {
    await t.step(String(header), () => assert.deepEqual(parseBearerChallenge(header), expected));
  }
});
