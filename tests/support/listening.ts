// A fixture server as a child process: ready when it prints "listening <url>" on stdout, killed
// (SIGKILL) when disposed. Shared by the native, gateway, fault and OAuth fixtures.

import { pumpLines } from "../../src/lines.ts";

/** A fixture process that printed "listening <url>". */
export interface Listening {
  url: string;
  process: Deno.ChildProcess;
  kill(): Promise<void>;
}

export async function startListening(args: string[], what: string): Promise<Listening> {
  const process = new Deno.Command(Deno.execPath(), {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const errors: string[] = [];
  void pumpLines(process.stderr, (line) => void errors.push(line)).catch(() => {});
  let killed = false;
  const kill = async () => {
    if (killed) return;
    killed = true;
    try {
      process.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await process.status;
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      void pumpLines(process.stdout, (line) => {
        const match = /^listening (\S+)/.exec(line);
        if (match) resolve(match[1]!);
      }).catch(() => {});
      process.status.then(() =>
        reject(new Error(`${what} exited before listening:\n${errors.join("\n")}`))
      );
    });
    return { url, process, kill };
  } catch (error) {
    await kill();
    throw error;
  }
}
