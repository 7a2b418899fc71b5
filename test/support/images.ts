import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, mkdir, mkdtemp, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { openSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { run, runOk } from "../../agent/exec.ts";

/*
 * Small container images for tests on the real Docker engine, built locally (no public registry is
 * reachable) and served by Debian's `docker-registry` on 127.0.0.1:5000, so the agent's `docker pull`
 * runs for real. Built once per machine: a Debian root filesystem made by mmdebstrap (cached as a tar
 * under IMAGE_CACHE, keyed by its recipe) is `docker import`ed, tagged with the recipe's hash and
 * pushed; later runs find the tag in the registry and do nothing. Concurrent test files (and test
 * runs) share one build through a lock directory.
 *
 * Run it as a script (`npx tsx test/support/images.ts`) to build ahead of the tests (.ci/run does).
 */

export const REGISTRY = "127.0.0.1:5000";
const CACHE = process.env.GM_TEST_IMAGE_CACHE ?? "/var/tmp/gm-test-images";
const DEBIAN_MIRROR = "http://deb.debian.org/debian";

/** Debian bookworm with an SSH server and a Jupyter server (`python3 -m jupyter_server`). */
const DEBIAN_RECIPE = {
  suite: "bookworm",
  variant: "minbase",
  packages: ["openssh-server", "python3-jupyter-server"],
  dpkgopts: ["path-exclude=/usr/share/doc/*", "path-exclude=/usr/share/man/*", "path-exclude=/usr/share/locale/*"],
};

interface ImageRecipe {
  /** Repository under the registry, e.g. gm-test/ssh. */
  name: string;
  rootfs: "debian" | "busybox";
  /** `docker import --change` instructions. */
  changes: string[];
}

const RECIPES = {
  /** Debian with openssh-server; no command of its own (SSH mode supplies the workload). */
  ssh: { name: "gm-test/ssh", rootfs: "debian", changes: ['CMD ["/usr/sbin/sshd", "-D", "-e"]'] },
  /** Debian with jupyter-server. */
  jupyter: { name: "gm-test/jupyter", rootfs: "debian", changes: ['CMD ["python3", "-m", "jupyter_server", "--allow-root"]'] },
  /** busybox only: no SSH server, no package manager, neither ENTRYPOINT nor CMD. */
  plain: { name: "gm-test/plain", rootfs: "busybox", changes: [] },
  /** busybox with an ENTRYPOINT and no CMD. */
  entrypoint: {
    name: "gm-test/entrypoint",
    rootfs: "busybox",
    changes: ['ENTRYPOINT ["/bin/sh", "-c", "echo entrypoint ran; exec sleep 2147483647"]'],
  },
} satisfies Record<string, ImageRecipe>;

export type TestImageName = keyof typeof RECIPES;
export type TestImages = Record<TestImageName, string>;

const hash = (value: unknown) => createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 12);
const rootfsKey = (rootfs: ImageRecipe["rootfs"]) => (rootfs === "debian" ? `debian-${hash(DEBIAN_RECIPE)}` : "busybox-1");

/** The registry reference of each test image (`127.0.0.1:5000/gm-test/ssh:<recipe hash>`), built and pushed if missing. */
export async function testImages(): Promise<TestImages> {
  await ensureRegistry();
  const entries = Object.entries(RECIPES) as [TestImageName, ImageRecipe][];
  const refs = Object.fromEntries(
    entries.map(([key, recipe]) => [key, `${REGISTRY}/${recipe.name}:${hash([rootfsKey(recipe.rootfs), recipe.changes])}`]),
  ) as TestImages;
  if ((await Promise.all(entries.map(([key]) => inRegistry(refs[key])))).every(Boolean)) return refs;
  await withLock(async () => {
    for (const [key, recipe] of entries) {
      if (await inRegistry(refs[key])) continue;
      const local = await run("docker", ["image", "inspect", refs[key]]);
      if (local.code !== 0) {
        const tar = await rootfsTar(recipe.rootfs);
        await runOk("docker", ["import", ...recipe.changes.flatMap((change) => ["--change", change]), tar, refs[key]]);
      }
      await runOk("docker", ["push", refs[key]]);
    }
  });
  return refs;
}

async function inRegistry(ref: string): Promise<boolean> {
  const [, repository, tag] = /^[^/]+\/(.+):([^:]+)$/.exec(ref)!;
  const response = await fetch(`http://${REGISTRY}/v2/${repository}/manifests/${tag}`, {
    method: "HEAD",
    headers: { accept: "application/vnd.docker.distribution.manifest.v2+json" },
  }).catch(() => null);
  return response?.status === 200;
}

/** Starts Debian's docker-registry on 127.0.0.1:5000 (left running, like dockerd) unless one answers. */
export async function ensureRegistry(): Promise<void> {
  const answers = async () => (await fetch(`http://${REGISTRY}/v2/`).catch(() => null))?.status === 200;
  if (await answers()) return;
  await mkdir(join(CACHE, "registry"), { recursive: true });
  const config = join(CACHE, "registry.yml");
  await writeFile(
    config,
    [
      "version: 0.1",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${join(CACHE, "registry")}`,
      "  delete:",
      "    enabled: true",
      "http:",
      `  addr: ${REGISTRY}`,
      "",
    ].join("\n"),
  );
  const log = openSync(join(CACHE, "registry.log"), "a");
  spawn("docker-registry", ["serve", config], { detached: true, stdio: ["ignore", log, log] }).unref();
  for (let attempt = 0; attempt < 100; attempt++) {
    if (await answers()) return;
    await sleep(100);
  }
  throw new Error(`docker-registry did not answer on ${REGISTRY}; see ${join(CACHE, "registry.log")}`);
}

/** The cached root filesystem tar, built when missing. */
async function rootfsTar(rootfs: ImageRecipe["rootfs"]): Promise<string> {
  const tar = join(CACHE, `${rootfsKey(rootfs)}.tar`);
  if (await stat(tar).catch(() => null)) return tar;
  const partial = `${tar}.partial`;
  if (rootfs === "debian") {
    await runOk("mmdebstrap", [
      `--variant=${DEBIAN_RECIPE.variant}`,
      `--include=${DEBIAN_RECIPE.packages.join(",")}`,
      ...DEBIAN_RECIPE.dpkgopts.map((option) => `--dpkgopt=${option}`),
      "--format=tar",
      DEBIAN_RECIPE.suite,
      partial,
      DEBIAN_MIRROR,
    ]);
  } else {
    await busyboxRootfs(partial);
  }
  await rename(partial, tar);
  return tar;
}

/** /bin/busybox from Debian's busybox-static with a link per applet, root in /etc/passwd. */
async function busyboxRootfs(tar: string): Promise<void> {
  const dir = await mkdtemp(join(CACHE, "busybox-"));
  try {
    for (const sub of ["bin", "etc", "root", "tmp", "proc", "sys", "dev"]) await mkdir(join(dir, sub));
    await chmod(join(dir, "tmp"), 0o1777);
    await writeFile(join(dir, "bin", "busybox"), await readFile("/bin/busybox"));
    await chmod(join(dir, "bin", "busybox"), 0o755);
    const applets = (await runOk("/bin/busybox", ["--list"])).split("\n").filter((name) => name && name !== "busybox");
    for (const applet of applets) await symlink("busybox", join(dir, "bin", applet));
    await writeFile(join(dir, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\n");
    await writeFile(join(dir, "etc", "group"), "root:x:0:\n");
    await runOk("tar", ["-C", dir, "--numeric-owner", "--owner=0", "--group=0", "-cf", tar, "."]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One builder per machine: a lock directory naming its holder's pid; a dead holder's lock is taken over. */
async function withLock(work: () => Promise<void>): Promise<void> {
  await mkdir(CACHE, { recursive: true });
  const lock = join(CACHE, "build.lock");
  for (;;) {
    try {
      await mkdir(lock);
      await writeFile(join(lock, "pid"), String(process.pid));
      break;
    } catch {
      const holder = Number(await readFile(join(lock, "pid"), "utf8").catch(() => "0"));
      if (holder > 0 && !alive(holder)) await rm(lock, { recursive: true, force: true });
      else await sleep(500);
    }
  }
  try {
    await work();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await testImages(), null, 2));
}
