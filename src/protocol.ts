// MCP protocol versions, without loading the SDK (whose modules build every Zod schema when
// loaded, which costs serve -- <cmd> more start time than its child). Kept equal to the SDK's
// lists by tests/protocol_test.ts.

/** The newest protocol version. */
export const LATEST_PROTOCOL_VERSION = "2025-11-25";

/** Every protocol version a client may ask for, newest first. */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly string[] = [
  LATEST_PROTOCOL_VERSION,
  "2025-06-18",
  "2025-03-26",
  "2024-11-05",
  "2024-10-07",
];
