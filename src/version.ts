// The version, read from deno.json so there is one place to bump it.

import config from "../deno.json" with { type: "json" };

export const VERSION: string = config.version;
