// Opening the authorization URL: $BROWSER (split on spaces, the URL appended) or the platform's
// opener. The URL is always printed too, so a headless user can open it elsewhere.

import { formatError } from "../errors.ts";
import { log } from "../log.ts";

/** Starts the browser on `url`; never throws (the printed URL is the fallback). */
export function openBrowser(url: string, browser: string | undefined): void {
  const [command, ...args] = browser?.trim()
    ? browser.trim().split(/\s+/)
    : Deno.build.os === "darwin"
    ? ["open"]
    : Deno.build.os === "windows"
    ? ["rundll32", "url.dll,FileProtocolHandler"]
    : ["xdg-open"];
  try {
    const child = new Deno.Command(command!, {
      args: [...args, url],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    child.status.then((status) => {
      if (!status.success) log.debug(`the browser command "${command}" exited with ${status.code}`);
    });
  } catch (error) {
    log.warn(`could not start a browser (${command}): ${formatError(error)}; open the URL above`);
  }
}
