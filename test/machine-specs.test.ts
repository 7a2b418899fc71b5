import { beforeAll, describe, expect, it } from "vitest";
import { issueApiKey } from "../domain/apiKeys.ts";
import { chunkDlperf } from "../domain/dlperf.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { CREATE_INSTANCE, createAccount, createListedMachine, instanceInput, unwrap } from "./support/rentals.ts";

const app = useTestApp();

let host: { userId: number; key: string };
let client: { userId: number; key: string };

beforeAll(async () => {
  host = await createAccount("host");
  client = await createAccount("client");
});

const UPDATE = /* GraphQL */ `
  mutation ($input: UpdateMachineInput!) {
    updateMachine(input: $input) {
      __typename
      ... on Error { code message }
      ... on StrandsContractsError { field required }
      ... on ValidationError { issues { path message } }
      ... on MutationUpdateMachineSuccess { data { id numGpus driverVersion cudaMaxGood diskBw dlperf cpuArch hasAvx gpuMaxPowerW cpuGhz gpuMaxTempC moboName ubuntuVersion } }
    }
  }
`;

async function machineKey(machineId: number): Promise<string> {
  return (await issueApiKey(prisma, { userId: host.userId, name: "agent", scope: "MACHINE", machineId })).token;
}

const machineRow = (id: number) => prisma.machine.findUniqueOrThrow({ where: { id } });
const offersOf = (machineId: number) => prisma.offer.findMany({ where: { machineId }, orderBy: { numGpus: "asc" } });
const update = (input: Record<string, unknown>, key: string) => app.gql(UPDATE, { input }, key);

describe("updateMachine", () => {
  it("the agent's re-check (its MACHINE key) upgrades driver and CUDA; offers and DLPerf follow", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 4 });
    const key = await machineKey(machineId);
    const before = await machineRow(machineId);

    const result = await update(
      { machineId: `Machine:${machineId}`, driverVersion: "560.35.03", cudaMaxGood: 12.6, diskBw: 1200, cpuArch: "AMD64", hasAvx: true, gpuMaxPowerW: 450 },
      key,
    );
    expect(result.data.updateMachine).toMatchObject({
      __typename: "MutationUpdateMachineSuccess",
      data: { driverVersion: "560.35.03", cudaMaxGood: 12.6, diskBw: 1200, cpuArch: "AMD64", hasAvx: true, gpuMaxPowerW: 450 },
    });
    const after = await machineRow(machineId);
    // A slower disk feeds 4 GPUs worse: DLPerf drops, and each offer's with it.
    expect(after.dlperf).toBeLessThan(before.dlperf);
    const offers = await offersOf(machineId);
    expect(offers.map((offer) => offer.numGpus)).toEqual([1, 2, 4]);
    for (const offer of offers) {
      expect(offer).toMatchObject({ driverVersion: "560.35.03", cudaMaxGood: 12.6, diskBw: 1200 });
      expect(offer.dlperf).toBeCloseTo(chunkDlperf(after, offer.numGpus), 6);
    }

    // What the agent detected is searchable by the reference's names.
    const search = async (query: string) =>
      ((await app.gql(`query ($q: String) { offers(query: $q, first: 10) { edges { node { numGpus } } } }`, { q: `machine_id=${machineId} ${query}` })).data
        .offers.edges as unknown[]).length;
    expect(await search("has_avx=true gpu_max_power>=450 cpu_arch=amd64 rentable=any")).toBe(3);
    expect(await search("has_avx=false rentable=any")).toBe(0);
    expect(await search("gpu_max_power>450 rentable=any")).toBe(0);
  });

  it("clock, temperature limit, motherboard and Ubuntu release are stored and searchable by the reference's names", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 2 });
    const search = async (query: string) =>
      ((await app.gql(`query ($q: String) { offers(query: $q, first: 10) { edges { node { numGpus } } } }`, { q: `machine_id=${machineId} rentable=any ${query}` }))
        .data.offers.edges as unknown[]).length;
    // Not reported yet: no bound matches, and `=null` finds the machine.
    for (const query of ["cpu_ghz>=0", "gpu_max_temp<200", "ubuntu_version>=1", "mobo_name=ROMED8-2T"]) expect(await search(query), query).toBe(0);
    expect(await search("cpu_ghz=null gpu_max_temp=null mobo_name=null ubuntu_version=null")).toBe(2);

    const result = await update(
      { machineId: `Machine:${machineId}`, cpuGhz: 3.5, gpuMaxTempC: 87, moboName: "ROMED8-2T", ubuntuVersion: "22.04" },
      await machineKey(machineId),
    );
    expect(result.data.updateMachine.data).toMatchObject({ cpuGhz: 3.5, gpuMaxTempC: 87, moboName: "ROMED8-2T", ubuntuVersion: "22.04" });
    expect(await search("cpu_ghz>=3 gpu_max_temp<90 mobo_name=ROMED8-2T ubuntu_version>=22.04")).toBe(2);
    expect(await search("cpu_ghz>3.5")).toBe(0);
    expect(await search("gpu_max_temp<87")).toBe(0);
    expect(await search("mobo_name=WRX80E")).toBe(0);
    expect(await search("ubuntu_version>22.04")).toBe(0);
    expect(await search("ubuntu_version in [20.04,22.04]")).toBe(2);

    const bad = await update({ machineId: `Machine:${machineId}`, ubuntuVersion: "jammy", gpuMaxTempC: 900 }, host.key);
    expect(bad.data.updateMachine.__typename).toBe("ValidationError");
    expect(bad.data.updateMachine.issues.map((issue: { path: string[] }) => issue.path.at(-1)).sort()).toEqual(["gpuMaxTempC", "ubuntuVersion"]);
    expect(await machineRow(machineId)).toMatchObject({ ubuntuVersion: "22.04", gpuMaxTempC: 87 });
  });

  it("offers sort by cpu_ghz, machines that did not report it as 0, and page on", async () => {
    const fast = await createListedMachine(host.userId, { numGpus: 1 });
    const unknown = await createListedMachine(host.userId, { numGpus: 1 });
    await update({ machineId: `Machine:${fast}`, cpuGhz: 4.2 }, host.key);
    const page = async (after?: string) =>
      (
        await app.gql(
          `query ($q: String, $after: String) { offers(query: $q, first: 1, after: $after, orderBy: [{ field: CPU_GHZ, direction: DESC }]) { edges { cursor node { machineId } } } }`,
          { q: `machine_id in [${fast},${unknown}] rentable=any`, after },
        )
      ).data.offers.edges as { cursor: string; node: { machineId: string } }[];
    const first = await page();
    const second = await page(first[0].cursor);
    expect([first[0].node.machineId, second[0].node.machineId]).toEqual([`Machine:${fast}`, `Machine:${unknown}`]);
  });

  it("the host's account key may update; fewer GPUs shrink the offers and the chunk size", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 8, listing: { minChunk: 8 } });
    const result = await update({ machineId: `Machine:${machineId}`, numGpus: 4 }, host.key);
    expect(result.data.updateMachine.data.numGpus).toBe(4);
    expect(await machineRow(machineId)).toMatchObject({ numGpus: 4, minChunk: 4 });
    expect((await offersOf(machineId)).map((offer) => offer.numGpus)).toEqual([4]);
  });

  it("an unchanged report writes nothing", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 2 });
    const before = await machineRow(machineId);
    const result = await update({ machineId: `Machine:${machineId}`, driverVersion: before.driverVersion, numGpus: 2 }, await machineKey(machineId));
    expect(result.data.updateMachine.__typename).toBe("MutationUpdateMachineSuccess");
    expect(await machineRow(machineId)).toEqual(before);
  });

  it("refuses, with nothing written, updates that would strand live contracts: fewer GPUs than rented, less disk than reserved", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 8 });
    const rented = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 4, { diskGb: 300 }) }, client.key)).data.createInstance);
    expect(rented.instance.numGpus).toBe(4);
    const key = await machineKey(machineId);
    const before = await machineRow(machineId);
    const offersBefore = await offersOf(machineId);

    const fewer = await update({ machineId: `Machine:${machineId}`, numGpus: 2, driverVersion: "560.35.03" }, key);
    expect(fewer.data.updateMachine).toMatchObject({ __typename: "StrandsContractsError", code: "STRANDS_CONTRACTS", field: "numGpus", required: 4 });
    const smaller = await update({ machineId: `Machine:${machineId}`, diskSpaceGb: 250 }, host.key);
    expect(smaller.data.updateMachine).toMatchObject({ __typename: "StrandsContractsError", field: "diskSpaceGb", required: 300 });
    expect(await machineRow(machineId)).toEqual(before);
    expect(await offersOf(machineId)).toEqual(offersBefore);

    // Down to exactly what the contracts hold is fine.
    const exact = await update({ machineId: `Machine:${machineId}`, numGpus: 4, diskSpaceGb: 300 }, key);
    expect(exact.data.updateMachine.data.numGpus).toBe(4);
  });

  it("bad specs are a ValidationError naming the field; another machine's key or another host is NOT_FOUND; nothing written", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 2 });
    const otherMachine = await createListedMachine(host.userId, { numGpus: 2 });
    const before = await machineRow(machineId);
    const id = `Machine:${machineId}`;

    const cases: [Record<string, unknown>, string, string][] = [
      [{ machineId: id, numGpus: 0 }, host.key, "ValidationError"],
      [{ machineId: id, driverVersion: "latest" }, host.key, "ValidationError"],
      [{ machineId: id, pcieBw: 100 }, host.key, "ValidationError"],
      [{ machineId: id, gpuName: null }, host.key, "ValidationError"],
      [{ machineId: id, numGpus: 1 }, await machineKey(otherMachine), "NotFoundError"],
      [{ machineId: id, numGpus: 1 }, client.key, "NotFoundError"],
    ];
    for (const [input, key, typename] of cases) {
      expect((await update(input, key)).data.updateMachine.__typename, JSON.stringify(input)).toBe(typename);
    }
    const issues = (await update({ machineId: id, pcieBw: 100 }, host.key)).data.updateMachine.issues;
    expect(issues[0].path).toEqual(["pcieBw"]);
    expect(await machineRow(machineId)).toEqual(before);
    const anonymous = await app.gql(UPDATE, { input: { machineId: id, numGpus: 1 } });
    expect(anonymous.data.updateMachine).toMatchObject({ __typename: "NotAuthenticatedError", code: "UNAUTHENTICATED" });
    expect(await machineRow(machineId)).toEqual(before);
  });
});

describe("the speed test endpoint", () => {
  it("sends and takes the bytes asked for, names the caller's address, and only for machine keys or hosts", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 1 });
    const key = await machineKey(machineId);
    const readOnly = (await issueApiKey(prisma, { userId: host.userId, name: "read", scope: "ACCOUNT", permissions: ["READ"] })).token;
    const auth = (token: string) => ({ authorization: `Bearer ${token}` });

    const down = await fetch(`${app.baseUrl}/speedtest/download?bytes=3000000`, { headers: auth(key) });
    expect(down.status).toBe(200);
    expect(down.headers.get("x-client-address")).toBe("127.0.0.1");
    expect((await down.arrayBuffer()).byteLength).toBe(3_000_000);

    const up = await fetch(`${app.baseUrl}/speedtest/upload`, { method: "POST", headers: auth(host.key), body: Buffer.alloc(1_234_567) });
    expect(await up.json()).toEqual({ bytes: 1_234_567, address: "127.0.0.1" });

    expect((await fetch(`${app.baseUrl}/speedtest/download?bytes=10`)).status).toBe(401);
    expect((await fetch(`${app.baseUrl}/speedtest/download?bytes=10`, { headers: auth(readOnly) })).status).toBe(403);
    expect((await fetch(`${app.baseUrl}/speedtest/download?bytes=0`, { headers: auth(key) })).status).toBe(400);
    expect((await fetch(`${app.baseUrl}/speedtest/download?bytes=${2 ** 40}`, { headers: auth(key) })).status).toBe(400);
  });
});
