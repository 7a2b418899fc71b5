import { join } from "node:path";
import { run, runOk } from "../../agent/exec.ts";
import { AGENT_KEY, agentScope, INSTANCE_KEY } from "../../agent/runtimes/docker.ts";
import type { AgentProcess } from "./agent-process.ts";

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

/** Ids of the containers the agent with this state directory made (its docker runtime's scope). */
export async function containersOfAgent(agentStateDir: string): Promise<string[]> {
  const made = await runOk("docker", ["ps", "--all", "--quiet", "--filter", `label=${AGENT_KEY}=${agentScope(join(agentStateDir, "docker"))}`]);
  return made.split("\n").filter(Boolean);
}

/**
 * After a test file: stops its agent if it still runs, then removes every container that agent made,
 * by its scope (container labels repeat across test databases; the scope does not).
 */
export async function stopAgentAndRemoveContainers(agent: AgentProcess | undefined, agentStateDir: string): Promise<void> {
  if (agent && agent.child.exitCode === null && agent.child.signalCode === null) {
    agent.child.kill("SIGTERM");
    await agent.exited;
  }
  const ids = await containersOfAgent(agentStateDir);
  if (ids.length > 0) await run("docker", ["rm", "--force", "--volumes", ...ids]);
}
