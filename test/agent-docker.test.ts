import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type ContainerSpec, workloadScript } from "../agent/runtime.ts";
import { AGENT_KEY, DockerRuntime, GPU_ISOLATION_KEY, GPUS_KEY, INSTANCE_KEY, LABEL_KEY, REBOOT_KEY, RECYCLE_KEY } from "../agent/runtimes/docker.ts";

// No Docker engine exists here: a fake `docker` first on PATH records its arguments (and the env
// file's contents, which the runtime deletes after `docker create`) and answers like the CLI.
const FAKE_DOCKER = `#!/usr/bin/env node
const fs = require("node:fs");
const args = process.argv.slice(2);
const envFileAt = args.indexOf("--env-file");
const envFile = envFileAt >= 0 ? fs.readFileSync(args[envFileAt + 1], "utf8") : undefined;
const envFileMode = envFileAt >= 0 ? (fs.statSync(args[envFileAt + 1]).mode & 0o777).toString(8) : undefined;
const stdin = args.includes("--password-stdin") ? fs.readFileSync(0, "utf8") : undefined;
fs.appendFileSync(process.env.FAKE_DOCKER_LOG, JSON.stringify({ args, envFile, envFileMode, stdin }) + "\\n");
switch (args[0]) {
  case "pull":
    console.log("latest: Pulling from demo/image");
    console.log("a1b2c3: Downloading [=====>     ] 5MB/10MB");
    console.log("Status: Downloaded newer image for demo/image:latest");
    break;
  case "create":
    if (process.env.FAKE_DOCKER_NO_STORAGE_OPT && args.includes("--storage-opt")) {
      console.error("Error response from daemon: --storage-opt is supported only for overlay over xfs with 'pquota' mount option");
      process.exit(125);
    }
    console.log("0123456789abcdef");
    break;
  case "image":
    console.log('{"Entrypoint":["/entry"],"Cmd":null}');
    break;
  case "ps":
    process.stdout.write(process.env.FAKE_DOCKER_PS ?? "");
    break;
  case "info":
    console.log((process.env.FAKE_DOCKER_RUNTIMES ?? '{"runc":{}}') + "\t4");
    break;
  case "stats":
    console.log("1.2MB / 3.4kB");
    break;
  case "stop":
    if (process.env.FAKE_DOCKER_STOP_FAILS) { console.error("Error: timeout"); process.exit(1); }
    console.log(args[args.length - 1]);
    break;
  default:
    console.log(args[args.length - 1]);
}
`;

let dir: string;
let log: string;
const logger = pino({ level: "silent" });
/** The engine's name for a label: scoped to the runtime's state directory. */
const name = (label: string) => new DockerRuntime(join(dir, "state"), logger).containerName(label);
const calls = async () =>
  (await readFile(log, "utf8").catch(() => ""))
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { args: string[]; envFile?: string; envFileMode?: string; stdin?: string });

const spec = (overrides: Partial<ContainerSpec> = {}): ContainerSpec => ({
  label: "C.34",
  instanceId: "Instance:34",
  image: "demo/image:latest",
  launchMode: "SSH",
  onstart: "echo hello",
  env: { FOO: "bar baz", CONTAINER_API_KEY: "secret-key", CONTAINER_LABEL: "C.34" },
  ports: [
    { containerPort: 22, protocol: "tcp", hostPort: 40000 },
    { containerPort: 8082, protocol: "udp", hostPort: 40001 },
  ],
  sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq8 me@laptop"],
  jupyterToken: null,
  jupyterBasePath: "/jupyter/34/",
  args: [],
  diskGb: 25,
  numGpus: 2,
  gpuIndices: [2, 3],
  cpuCores: 8,
  memoryMb: 64_000,
  recycleCount: 0,
  rebootCount: 0,
  ...overrides,
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "agent-docker-"));
  await writeFile(join(dir, "docker"), FAKE_DOCKER);
  await chmod(join(dir, "docker"), 0o755);
  process.env.PATH = `${dir}:${process.env.PATH}`;
  log = join(dir, "calls.jsonl");
  process.env.FAKE_DOCKER_LOG = log;
});

beforeEach(async () => {
  await rm(log, { force: true });
  delete process.env.FAKE_DOCKER_NO_STORAGE_OPT;
  delete process.env.FAKE_DOCKER_STOP_FAILS;
  delete process.env.FAKE_DOCKER_PS;
  delete process.env.FAKE_DOCKER_RUNTIMES;
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("docker runtime (fake docker CLI)", () => {
  it("pulls with progress logged, then creates with env, ports, GPUs, disk size, labels and the onstart", async () => {
    const lines: string[] = [];
    const capture = pino({ level: "info" }, { write: (line: string) => void lines.push(line) });
    const runtime = new DockerRuntime(join(dir, "state"), capture);
    await runtime.create(spec());

    const [pull, info, create] = (await calls()).filter((call) => ["pull", "info", "create"].includes(call.args[0]!));
    expect(info!.args[0]).toBe("info");
    // `--` before every positional argument: nothing a client sends is read as an option.
    expect(pull!.args).toEqual(["pull", "--", "demo/image:latest"]);
    expect(lines.filter((line) => line.includes('"msg":"pull"')).map((line) => JSON.parse(line).progress)).toEqual([
      "latest: Pulling from demo/image",
      "a1b2c3: Downloading [=====>     ] 5MB/10MB",
      "Status: Downloaded newer image for demo/image:latest",
    ]);
    expect(create!.args).toEqual([
      "create",
      "--name",
      name("C.34"),
      "--label",
      `${AGENT_KEY}=${runtime.scope}`,
      "--label",
      `${LABEL_KEY}=C.34`,
      "--label",
      `${INSTANCE_KEY}=Instance:34`,
      "--label",
      `${RECYCLE_KEY}=0`,
      "--label",
      `${REBOOT_KEY}=0`,
      "--label",
      `${GPUS_KEY}=2,3`,
      "--env-file",
      join(dir, "state", "C.34.env"),
      "-p",
      "40000:22/tcp",
      "-p",
      "40001:8082/udp",
      "--mount",
      `type=bind,source=${join(dir, "state", "ssh", "C.34")},target=/.gm/ssh,readonly`,
      // The host's OpenSSH, for an image without an sshd of its own.
      "--mount",
      `type=bind,source=${join(dir, "state", "openssh")},target=/.gm-ssh,readonly`,
      // No NVIDIA runtime on this engine: no --gpus (docker start would fail), and the container
      // says its GPUs are not isolated; the CPU share is capped at the engine's 4 CPUs.
      "--label",
      `${GPU_ISOLATION_KEY}=none`,
      "--env",
      "GPU_ISOLATION=none",
      "--cpus",
      "4",
      "--memory",
      "64000m",
      "--storage-opt",
      "size=25G",
      "--init",
      "--entrypoint",
      "sh",
      "--",
      "demo/image:latest",
      "-c",
      workloadScript(spec()),
    ]);
    expect(create!.args.at(-1)).toMatch(/sshd[\s\S]*echo hello\nexec sleep infinity$/);
    // The keys file the container's sshd reads, mounted read-only.
    expect(await readFile(join(dir, "state", "ssh", "C.34", "authorized_keys"), "utf8")).toBe(`${spec().sshKeys[0]}\n`);
    // The key is in a private file, never on the command line, and the file is gone afterwards.
    expect(create!.envFile).toBe(
      "FOO=bar baz\nCONTAINER_API_KEY=secret-key\nCONTAINER_LABEL=C.34\nCUDA_VISIBLE_DEVICES=2,3\nNVIDIA_VISIBLE_DEVICES=2,3\n",
    );
    expect(create!.envFileMode).toBe("600");
    expect(create!.args.join(" ")).not.toContain("secret-key");
    await expect(readFile(join(dir, "state", "C.34.env"))).rejects.toThrow(/ENOENT/);
  });

  it("passes exactly the container's GPUs on an engine with the NVIDIA runtime, numbered from 0 inside", async () => {
    process.env.FAKE_DOCKER_RUNTIMES = '{"nvidia":{"path":"nvidia-container-runtime"},"runc":{}}';
    await new DockerRuntime(join(dir, "state"), logger).create(spec({ cpuCores: 2.5 }));
    const create = (await calls()).find((call) => call.args[0] === "create")!;
    const gpus = create.args.indexOf("--gpus");
    expect(create.args.slice(gpus, gpus + 4)).toEqual(["--gpus", '"device=2,3"', "--cpus", "2.5"]);
    expect(create.envFile).toContain("NVIDIA_VISIBLE_DEVICES=2,3\n");
    expect(create.envFile).not.toContain("CUDA_VISIBLE_DEVICES");
  });

  it("pulls a private image through a one-off client config, the password on stdin only", async () => {
    await new DockerRuntime(join(dir, "state"), logger).create(
      spec({ image: "registry.example.com/team/app:1", registryAuth: { registry: "registry.example.com", username: "bot", password: "s3cret" } }),
    );
    const [login, pull] = await calls();
    const config = login!.args[1]!;
    expect(login!.args).toEqual(["--config", config, "login", "--username", "bot", "--password-stdin", "registry.example.com"]);
    expect(login!.stdin).toBe("s3cret");
    expect(pull!.args).toEqual(["--config", config, "pull", "--", "registry.example.com/team/app:1"]);
    expect(JSON.stringify((await calls()).map((call) => call.args))).not.toContain("s3cret");
    await expect(readFile(config)).rejects.toThrow(/ENOENT/);
  });

  it("runs the image's entrypoint in ENTRYPOINT mode and asks for no GPUs when it has none", async () => {
    process.env.FAKE_DOCKER_RUNTIMES = '{"nvidia":{}}';
    await new DockerRuntime(join(dir, "state"), logger).create(spec({ launchMode: "ENTRYPOINT", numGpus: 0, gpuIndices: [], ports: [] }));
    const create = (await calls()).find((call) => call.args[0] === "create")!;
    expect(create.args.slice(-4)).toEqual(["--storage-opt", "size=25G", "--", "demo/image:latest"]);
    expect(create.args).not.toContain("--gpus");
    expect(create.args).not.toContain("--entrypoint");
  });

  it("creates without the disk limit when the storage driver refuses --storage-opt", async () => {
    process.env.FAKE_DOCKER_NO_STORAGE_OPT = "1";
    await new DockerRuntime(join(dir, "state"), logger).create(spec());
    const creates = (await calls()).filter((call) => call.args[0] === "create");
    expect(creates).toHaveLength(2);
    expect(creates[0]!.args).toContain("--storage-opt");
    expect(creates[1]!.args).not.toContain("--storage-opt");
  });

  it("stops with the grace period, kills when stop fails, and tells stopped from exited", async () => {
    const runtime = new DockerRuntime(join(dir, "state"), logger);
    await runtime.stop("C.34", 7);
    process.env.FAKE_DOCKER_STOP_FAILS = "1";
    await runtime.stop("C.35", 3);
    expect((await calls()).map((call) => call.args)).toEqual([
      ["stop", "-t", "7", "--", name("C.34")],
      ["stop", "-t", "3", "--", name("C.35")],
      ["kill", "--", name("C.35")],
    ]);

    process.env.FAKE_DOCKER_PS = [
      "C.34\tInstance:34\texited\tExited (143) 2 seconds ago\t0\t0",
      "C.36\tInstance:36\texited\tExited (1) 1 second ago\t1\t0",
      "C.37\tInstance:37\trunning\tUp 5 minutes\t2\t3\t0,1",
      "C.38\tInstance:38\tcreated\tCreated\t0\t0",
      "",
    ].join("\n");
    expect(await runtime.list()).toEqual([
      { label: "C.34", instanceId: "Instance:34", state: "stopped", detail: "Exited (143) 2 seconds ago", recycleCount: 0, rebootCount: 0, ports: [] },
      { label: "C.36", instanceId: "Instance:36", state: "exited", detail: "Exited (1) 1 second ago", recycleCount: 1, rebootCount: 0, ports: [] },
      { label: "C.37", instanceId: "Instance:37", state: "running", detail: "Up 5 minutes", recycleCount: 2, rebootCount: 3, gpuIndices: [0, 1], ports: [] },
      { label: "C.38", instanceId: "Instance:38", state: "created", detail: "Created", recycleCount: 0, rebootCount: 0, ports: [] },
    ]);
    // A restart is recorded over the count the container was created with.
    await runtime.restart("C.37", 4, 4);
    expect((await runtime.list()).find((container) => container.label === "C.37")!.rebootCount).toBe(4);
    expect((await calls()).map((call) => call.args)).toContainEqual(["restart", "-t", "4", "--", name("C.37")]);
    const ps = (await calls()).find((call) => call.args[0] === "ps")!;
    expect(ps.args).toContain(`label=${AGENT_KEY}=${runtime.scope}`);

    // Starting clears the "stopped as asked" mark.
    await runtime.start("C.34");
    expect((await runtime.list())[0]!.state).toBe("exited");
  });

  it("removes with grace and reads bandwidth from docker stats", async () => {
    const runtime = new DockerRuntime(join(dir, "state"), logger);
    await runtime.remove("C.34", 5);
    expect(await runtime.netIo("C.34")).toEqual({ rxBytes: 1_200_000n, txBytes: 3_400n });
    expect((await calls()).map((call) => call.args)).toEqual([
      ["stop", "-t", "5", "--", name("C.34")],
      ["rm", "--force", "--volumes", "--", name("C.34")],
      ["stats", "--no-stream", "--format", "{{.NetIO}}", "--", name("C.34")],
    ]);
  });
});
