import { createHash } from "node:crypto";
import { access, chmod, copyFile, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { constants } from "node:fs";
import { basename, delimiter, join } from "node:path";
import { run, runOk } from "../exec.ts";

/**
 * The host's OpenSSH server as a self-contained bundle that any container can run, whatever its
 * distribution or libc, with no package manager and no network: sshd and its helper binaries, every
 * shared library `ldd` names and the dynamic loader, all in one directory that the docker runtime
 * mounts read-only at SSH_BUNDLE_DIR. The binaries run through the bundled loader
 * (`ld.so --library-path <bundle>/lib <binary>`), so the image's own libraries are never used for
 * them, and what sshd starts for a login (the image's shell, its programs) runs as usual.
 *
 * How OpenSSH is made to run from there:
 * - sshd re-executes itself for each connection by its own path, which would load it through the
 *   image's loader (absent, or another libc): OpenSSH before 9.8 takes `-r` (no re-execution);
 *   from 9.8 on it executes `sshd-session` (and from 10.0 `sshd-auth`) at the paths its
 *   SshdSessionPath/SshdAuthPath options name, which here are wrappers that go through the loader.
 * - privilege separation: sshd drops to the `sshd` user in a chroot of /run/sshd before
 *   authenticating; the container's start script adds that user to /etc/passwd when missing and
 *   makes /run/sshd.
 * - scp and sftp use the built-in `internal-sftp`, so the image needs no sftp-server.
 */

/** Where containers find the bundle. */
export const SSH_BUNDLE_DIR = "/.gm-ssh";
/** The bundle's entry point in a container: runs the bundled sshd; takes sshd's arguments. */
export const BUNDLED_SSHD = `${SSH_BUNDLE_DIR}/sshd`;
export const BUNDLED_SSHD_CONFIG = `${SSH_BUNDLE_DIR}/sshd_config`;

/** Where OpenSSH keeps its helper binaries on the distributions we know. */
const HELPER_DIRS = ["/usr/lib/openssh", "/usr/libexec/openssh", "/usr/libexec"];
/** sshd's helper binaries, each with the sshd_config option naming its path. */
const HELPERS = { "sshd-session": "SshdSessionPath", "sshd-auth": "SshdAuthPath" } as const;

const executable = (path: string) =>
  access(path, constants.X_OK).then(
    () => true,
    () => false,
  );

/** The host's sshd: on PATH, or in the sbin directories a login shell would have. */
export async function findHostSshd(path = process.env.PATH ?? ""): Promise<string | null> {
  for (const dir of [...path.split(delimiter).filter(Boolean), "/usr/sbin", "/sbin", "/usr/local/sbin"]) {
    if (await executable(join(dir, "sshd"))) return join(dir, "sshd");
  }
  return null;
}

/** What `ldd` says a binary needs: libraries by the name it loads them by, and the dynamic loader (none when static). */
export function parseLdd(text: string): { libraries: { name: string; path: string }[]; loader: string | null } {
  const libraries: { name: string; path: string }[] = [];
  let loader: string | null = null;
  for (const line of text.split("\n").map((l) => l.trim())) {
    const linked = /^(\S+) => (.+?) \(0x[0-9a-f]+\)$/.exec(line);
    if (linked) {
      libraries.push({ name: linked[1]!, path: linked[2]! });
      continue;
    }
    if (/=> not found/.test(line)) throw new Error(`a library of sshd is missing: ${line}`);
    const direct = /^(\/\S+) \(0x[0-9a-f]+\)$/.exec(line);
    if (direct) loader = direct[1]!;
  }
  return { libraries, loader };
}

async function needs(binary: string) {
  const { stdout, stderr, code } = await run("ldd", [binary]);
  // A static binary: ldd says "not a dynamic executable" and fails.
  if (code !== 0 && /not a dynamic executable|statically linked/.test(stdout + stderr)) return { libraries: [], loader: null };
  if (code !== 0) throw new Error(`ldd ${binary} failed: ${(stderr || stdout).trim()}`);
  return parseLdd(stdout);
}

/** A shell wrapper that runs `binary` of the bundle through its loader (or directly when it is static). */
function wrapper(binary: string, loader: string | null, extraArgs = ""): string {
  const run = loader ? `${SSH_BUNDLE_DIR}/lib/${basename(loader)} --library-path ${SSH_BUNDLE_DIR}/lib ${binary}` : binary;
  return `#!/bin/sh\nexec ${run}${extraArgs} "$@"\n`;
}

/**
 * Makes (or keeps) the bundle of the host's `sshd` in `target`. Kept as it is while the host's
 * binaries are unchanged; otherwise built beside it and swapped in (containers already running keep
 * the copy they mounted). Returns `target`, or null when the host has no sshd.
 */
export async function prepareSshBundle(target: string, sshd: string | null): Promise<string | null> {
  if (!sshd || !(await executable(sshd))) return null;
  const helpers: { name: keyof typeof HELPERS; path: string }[] = [];
  for (const name of Object.keys(HELPERS) as (keyof typeof HELPERS)[]) {
    for (const dir of HELPER_DIRS) {
      if (await executable(join(dir, name))) {
        helpers.push({ name, path: join(dir, name) });
        break;
      }
    }
  }
  const binaries = [{ name: "sshd", path: sshd }, ...helpers];
  const digest = createHash("sha256");
  for (const binary of binaries) digest.update(binary.name).update(await readFile(binary.path));
  const stamp = digest.digest("hex");
  if ((await readFile(join(target, "stamp"), "utf8").catch(() => "")) === stamp) return target;

  const building = `${target}.new`;
  await rm(building, { recursive: true, force: true });
  await mkdir(join(building, "bin"), { recursive: true, mode: 0o755 });
  await mkdir(join(building, "lib"), { mode: 0o755 });
  let loader: string | null = null;
  const copied = new Set<string>();
  for (const binary of binaries) {
    await copyFile(binary.path, join(building, "bin", binary.name));
    const needed = await needs(binary.path);
    loader ??= needed.loader;
    for (const library of needed.libraries) {
      if (copied.has(library.name)) continue;
      copied.add(library.name);
      // copyFile follows symlinks: the library under the name the binary asks for.
      await copyFile(library.path, join(building, "lib", library.name));
    }
  }
  if (loader) await copyFile(loader, join(building, "lib", basename(loader)));
  // Without sshd-session, sshd would re-execute itself by its own path (past the loader): -r stops that.
  const noReexec = helpers.some((helper) => helper.name === "sshd-session") ? "" : " -r";
  await writeFile(join(building, "sshd"), wrapper(`${SSH_BUNDLE_DIR}/bin/sshd`, loader, noReexec), { mode: 0o755 });
  const config = ["Subsystem sftp internal-sftp", "PrintLastLog no", "UseDNS no"];
  for (const helper of helpers) {
    await writeFile(join(building, helper.name), wrapper(`${SSH_BUNDLE_DIR}/bin/${helper.name}`, loader), { mode: 0o755 });
    config.push(`${HELPERS[helper.name]} ${SSH_BUNDLE_DIR}/${helper.name}`);
  }
  await writeFile(join(building, "sshd_config"), `${config.join("\n")}\n`, { mode: 0o644 });
  await writeFile(join(building, "stamp"), stamp);
  await chmod(building, 0o755);
  const old = `${target}.old`;
  await rm(old, { recursive: true, force: true });
  await rename(target, old).catch(() => {});
  await rename(building, target);
  await rm(old, { recursive: true, force: true });
  return target;
}

/** The per-instance host key, made on the host (the image may have no ssh-keygen) unless it exists. */
export async function ensureHostKey(file: string): Promise<void> {
  if (await access(file).then(() => true, () => false)) return;
  await runOk("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", file]);
}
