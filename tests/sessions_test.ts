// The session registry on its own, for what the CLI tests cannot time: a session that finishes
// opening after shutdown began is closed at once, never kept (its child would outlive us).

import assert from "node:assert/strict";
import { type Session, SessionRegistry } from "../src/downstream/sessions.ts";

function session(id: string, route = ""): Session & { closedWith?: string } {
  const entry: Session & { closedWith?: string } = {
    id,
    kind: "streamable",
    route,
    busy: () => false,
    close: (reason) => {
      entry.closedWith = reason;
      return Promise.resolve();
    },
  };
  return entry;
}

Deno.test("sessions: after closeAll, a session that finishes opening is closed, not kept", async () => {
  const registry = new SessionRegistry(0, 2);
  const open = session("a");
  registry.add(open);
  const release = registry.reserve();
  assert.ok(release, "a second session may open");
  await registry.closeAll("the server is shutting down");
  assert.equal(open.closedWith, "the server is shutting down");
  const late = session("b");
  registry.add(late);
  release();
  assert.equal(late.closedWith, "the server is shutting down");
  assert.equal(registry.get("b"), undefined);
  assert.equal(registry.size, 0);
});

Deno.test("sessions: --max-sessions counts sessions opening; closeRoute ends one route's", async () => {
  const registry = new SessionRegistry(0, 2);
  const first = registry.reserve()!;
  registry.add(session("a", "/x"));
  first();
  const second = registry.reserve();
  assert.ok(second);
  assert.equal(registry.reserve(), undefined, "one open and one opening fill the limit");
  registry.add(session("b", "/y"));
  second();
  assert.equal(registry.reserve(), undefined);
  const a = registry.get("a") as ReturnType<typeof session>;
  const b = registry.get("b") as ReturnType<typeof session>;
  await registry.closeRoute("/x", "removed from the config");
  assert.equal(a.closedWith, "removed from the config");
  assert.equal(b.closedWith, undefined);
  assert.equal(registry.size, 1);
  assert.ok(registry.reserve(), "room again");
});
