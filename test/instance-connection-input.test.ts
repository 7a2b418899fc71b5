import { describe, expect, it } from "vitest";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { createAccount, createListedMachine, unwrap } from "./support/rentals.ts";

// Bad input to the connection mutations: typed errors naming the field, nothing written.

const app = useTestApp();

const NETWORK = `mutation ($input: MachineNetworkInput!) { setMachineNetwork(input: $input) {
  __typename ... on ValidationError { code issues { path message } } ... on Error { code } } }`;
const ATTACH = `mutation ($id: ID!, $k: String!) { attachSshKey(instanceId: $id, publicKey: $k) {
  __typename ... on ValidationError { issues { path } } ... on Error { code } } }`;

describe("connection input", () => {
  it("refuses bad port ranges and addresses, naming the field, and keeps the machine's", async () => {
    const host = await createAccount("host");
    const machineId = await createListedMachine(host.userId, { numGpus: 1 });
    const id = `Machine:${machineId}`;
    for (const [input, field] of [
      [{ machineId: id, directPortStart: 41000, directPortEnd: 40999 }, "directPortEnd"],
      [{ machineId: id, directPortStart: 0, directPortEnd: 10 }, "directPortStart"],
      [{ machineId: id, directPortStart: 1000, directPortEnd: 70000 }, "directPortEnd"],
      [{ machineId: id, directPortStart: 1000, directPortEnd: 20000 }, "directPortEnd"],
      [{ machineId: id, publicAddress: "not an address!", directPortStart: 41000, directPortEnd: 41010 }, "publicAddress"],
    ] as const) {
      const result = (await app.gql(NETWORK, { input }, host.key)).data.setMachineNetwork;
      expect(result.__typename, JSON.stringify(input)).toBe("ValidationError");
      expect(result.issues.map((issue: { path: string[] }) => issue.path.join("."))).toContain(field);
    }
    expect(await prisma.machine.findUniqueOrThrow({ where: { id: machineId }, select: { directPortStart: true, directPortEnd: true, publicAddress: true } }))
      .toEqual({ directPortStart: 40000, directPortEnd: 40199, publicAddress: null });
    // Another host's machine does not exist for this one.
    const other = await createAccount("other");
    const foreign = (await app.gql(NETWORK, { input: { machineId: id, directPortStart: 41000, directPortEnd: 41010 } }, other.key)).data.setMachineNetwork;
    expect(foreign.code).toBe("NOT_FOUND");
  });

  it("refuses malformed keys, unknown key ids and other accounts' instances without writing", async () => {
    const host = await createAccount("host");
    const machineId = await createListedMachine(host.userId, { numGpus: 1 });
    const client = await createAccount("client");
    await prisma.user.update({ where: { id: client.userId }, data: { balanceMicros: 10_000_000n } });
    const created = await app.gql(
      `mutation ($input: CreateInstanceInput!) { createInstance(input: $input) { __typename ... on MutationCreateInstanceSuccess { data { instance { id } } } ... on Error { code message } } }`,
      { input: { offerId: `${machineId}-1`, image: "demo/workload:latest", diskGb: 1, launchMode: "SSH" } },
      client.key,
    );
    expect(created.data.createInstance.__typename, JSON.stringify(created)).toBe("MutationCreateInstanceSuccess");
    const instanceId = unwrap(created.data.createInstance).instance.id as string;

    const malformed = (await app.gql(ATTACH, { id: instanceId, k: "ssh-ed25519 not-base64" }, client.key)).data.attachSshKey;
    expect(malformed.__typename).toBe("ValidationError");
    expect(malformed.issues[0].path).toEqual(["publicKey"]);
    const stranger = await createAccount("stranger");
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOBZjjEEmSFmNe6qEOXHam6HG1kY5d7PZ3x2ZbTq3xYB me@laptop";
    expect((await app.gql(ATTACH, { id: instanceId, k: key }, stranger.key)).data.attachSshKey.code).toBe("NOT_FOUND");
    const detached = await app.gql(
      `mutation ($id: ID!, $k: ID!) { detachSshKey(instanceId: $id, sshKeyId: $k) { __typename ... on Error { code } } }`,
      { id: instanceId, k: "InstanceSshKey:999999" },
      client.key,
    );
    expect(detached.data.detachSshKey.code).toBe("NOT_FOUND");
    expect(await prisma.instanceSshKey.count({ where: { instanceId: Number(instanceId.split(":")[1]) } })).toBe(0);
  });

  it("a machine whose direct port range is exhausted is offered for port-less rentals only; a rental needing ports is refused naming them", async () => {
    const host = await createAccount("host");
    const machineId = await createListedMachine(host.userId, { numGpus: 2 });
    const client = await createAccount("client");
    await prisma.user.update({ where: { id: client.userId }, data: { balanceMicros: 10_000_000n } });
    // A range of two ports, both taken by one SSH rental with a port of its own.
    const range = (await app.gql(NETWORK, { input: { machineId: `Machine:${machineId}`, directPortStart: 42000, directPortEnd: 42001 } }, host.key)).data.setMachineNetwork;
    expect(range.__typename).toBe("MutationSetMachineNetworkSuccess");
    const CREATE = `mutation ($input: CreateInstanceInput!) { createInstance(input: $input) {
      __typename ... on MutationCreateInstanceSuccess { data { instance { id } } } ... on ValidationError { issues { path message } } ... on Error { code message } } }`;
    const rent = (input: Record<string, unknown>) =>
      app.gql(CREATE, { input: { offerId: `${machineId}-1`, image: "demo/workload:latest", diskGb: 1, ...input } }, client.key).then((r) => r.data.createInstance);
    expect((await rent({ launchMode: "SSH", ports: ["8081"] })).__typename).toBe("MutationCreateInstanceSuccess");

    const offered = async (filter: Record<string, unknown>) =>
      ((await app.gql(`query ($f: OfferFilter) { offers(query: "machine_id=${machineId} verified=any", filter: $f) { edges { node { id directPortCount } } } }`, { f: filter }))
        .data.offers.edges as { node: { id: string; directPortCount: number } }[]).map((edge) => edge.node);
    // Port-less rentals (ENTRYPOINT without ports, identity ports only) still find it.
    expect(await offered({})).toEqual([{ id: `Offer:${machineId}-1`, directPortCount: 0 }]);
    expect(await offered({ launchMode: "ENTRYPOINT" })).toHaveLength(1);
    expect(await offered({ launchMode: "ENTRYPOINT", ports: ["70000:70000"] })).toHaveLength(1);
    // Rentals that need a direct port do not.
    expect(await offered({ launchMode: "SSH" })).toEqual([]);
    expect(await offered({ launchMode: "JUPYTER" })).toEqual([]);
    expect(await offered({ ports: ["8081"] })).toEqual([]);
    const badPorts = await app.gql(`query { offers(filter: { ports: ["99999"] }) { edges { node { id } } } }`);
    expect(JSON.stringify(badPorts.errors)).toContain("ports");

    const before = await prisma.instance.count({ where: { machineId } });
    const refused = await rent({ launchMode: "SSH" });
    expect(refused.__typename).toBe("ValidationError");
    expect(refused.issues).toEqual([{ path: ["ports"], message: "needs 1 direct ports (with the launch mode's own) and the machine has 0 free" }]);
    expect(await prisma.instance.count({ where: { machineId } })).toBe(before);
    expect((await rent({ launchMode: "ENTRYPOINT" })).__typename).toBe("MutationCreateInstanceSuccess");
  });
});
