import { runOk } from "../../agent/exec.ts";
import { INSTANCE_KEY } from "../../agent/runtimes/docker.ts";

/** What tests read of `docker inspect`. */
export interface Inspected {
  Id: string;
  Config: { Env: string[]; Labels: Record<string, string> };
  HostConfig: { NanoCpus: number; Memory: number; DeviceRequests: unknown[] | null; PortBindings: Record<string, { HostIp: string; HostPort: string }[]> | null };
}

/**
 * The container of `instanceId` made for the API at `apiUrl` (labels and instance ids repeat across
 * test databases; the API_URL in the container's env does not).
 */
export async function inspectContainer(apiUrl: string, instanceId: string): Promise<Inspected | undefined> {
  const ids = (await runOk("docker", ["ps", "--all", "--quiet", "--no-trunc", "--filter", `label=${INSTANCE_KEY}=${instanceId}`])).split("\n").filter(Boolean);
  for (const id of ids) {
    const [container] = JSON.parse(await runOk("docker", ["inspect", id])) as Inspected[];
    if (container!.Config.Env.includes(`API_URL=${apiUrl}`)) return container;
  }
  return undefined;
}

export const envOf = (container: Inspected): Record<string, string> =>
  Object.fromEntries(container.Config.Env.map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]));
