import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type RunResult, run, runOk } from "../../agent/exec.ts";

/** A fresh ed25519 key pair in `dir`: the private key's file and the public key line. */
export async function keyPair(dir: string, name: string): Promise<{ file: string; publicKey: string }> {
  const file = join(dir, name);
  await runOk("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", file]);
  return { file, publicKey: (await readFile(`${file}.pub`, "utf8")).trim() };
}

/** The real ssh client as root at 127.0.0.1:`port` (a port published on loopback): its exit code and output. */
export function ssh(keyFile: string, port: number, command: string): Promise<RunResult> {
  return run("ssh", [
    "-i", keyFile, "-p", String(port),
    "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
    "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
    "root@127.0.0.1", command,
  ]);
}
