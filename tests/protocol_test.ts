// src/protocol.ts copies the SDK's protocol versions (so serve need not load the SDK): they must
// stay equal.

import assert from "node:assert/strict";
import { LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from "../src/protocol.ts";
import * as sdk from "../src/sdk.ts";

Deno.test("protocol: our version lists are the SDK's", () => {
  assert.equal(LATEST_PROTOCOL_VERSION, sdk.LATEST_PROTOCOL_VERSION);
  assert.deepEqual([...SUPPORTED_PROTOCOL_VERSIONS], [...sdk.SUPPORTED_PROTOCOL_VERSIONS]);
});
