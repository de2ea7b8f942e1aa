// WWW-Authenticate parsing (RFC 6750 / RFC 9728): the Bearer challenge's `resource_metadata`,
// `scope` and `error`, from a header that may carry several challenges.

export interface BearerChallenge {
  resourceMetadata?: string;
  scope?: string;
  error?: string;
  errorDescription?: string;
}

/** The Bearer challenge of a WWW-Authenticate header, or undefined when there is none. */
export function parseBearerChallenge(header: string | null): BearerChallenge | undefined {
  if (!header) return undefined;
  const params = bearerParams(header);
  if (!params) return undefined;
  const challenge: BearerChallenge = {};
  if (params.resource_metadata) challenge.resourceMetadata = params.resource_metadata;
  if (params.scope !== undefined) challenge.scope = params.scope;
  if (params.error) challenge.error = params.error;
  if (params.error_description) challenge.errorDescription = params.error_description;
  return challenge;
}

/** Tokenizes `scheme [token68 | param=value, ...]` challenges and returns Bearer's params. */
function bearerParams(header: string): Record<string, string> | undefined {
  let at = 0;
  let inBearer = false;
  let found: Record<string, string> | undefined;
  const skip = (pattern: RegExp) => {
    pattern.lastIndex = at;
    const match = pattern.exec(header);
    if (match && match.index === at) at += match[0].length;
    return match && match.index === at - match[0].length ? match : null;
  };
  while (at < header.length) {
    skip(/[\s,]+/y);
    const name = skip(/[!#$%&'*+.^_`|~0-9A-Za-z-]+/y);
    if (!name) {
      at++;
      continue;
    }
    skip(/\s*/y);
    if (header[at] === "=" && header[at + 1] !== "=") {
      at++;
      skip(/\s*/y);
      let value: string;
      if (header[at] === '"') {
        at++;
        value = "";
        while (at < header.length && header[at] !== '"') {
          if (header[at] === "\\") at++;
          value += header[at++] ?? "";
        }
        at++;
      } else {
        value = skip(/[^\s,]*/y)?.[0] ?? "";
      }
      if (inBearer && found) found[name[0].toLowerCase()] = value;
    } else {
      // A new scheme (possibly followed by a token68, which Bearer params never are).
      inBearer = name[0].toLowerCase() === "bearer";
      if (inBearer && !found) found = {};
      else if (!inBearer && found) break;
      skip(/[A-Za-z0-9._~+/-]+=*(?=\s*(,|$))/y);
    }
  }
  return found;
}
