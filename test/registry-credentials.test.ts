import { buildSchema, isInputObjectType, isObjectType } from "graphql";
import { readFile } from "node:fs/promises";
import { beforeAll, describe, expect, it } from "vitest";
import { machineAssignments } from "../domain/agent/assignments.ts";
import { imageRegistry } from "../domain/registryCredentials.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { CREATE_INSTANCE, createAccount, createListedMachine, unwrap } from "./support/rentals.ts";

// Private registry credentials: stored encrypted, never readable back through the API, and handed
// (decrypted) only to the agent of the machine that runs the rental, in its assignments.

const app = useTestApp();

let owner: { userId: number; key: string };
let machineId: number;

beforeAll(async () => {
  owner = await createAccount("owner");
  machineId = await createListedMachine((await createAccount("host")).userId);
});

const SAVE = /* GraphQL */ `
  mutation ($registry: String!, $auth: RegistryAuthInput!) {
    saveRegistryCredential(registry: $registry, auth: $auth) {
      __typename
      ... on MutationSaveRegistryCredentialSuccess { data { id registry username } }
      ... on Error { code message }
      ... on ValidationError { issues { path message } }
    }
  }
`;

async function rent(input: Record<string, unknown>): Promise<number> {
  const created = unwrap((await app.gql(CREATE_INSTANCE, { input: { offerId: `${machineId}-1`, diskGb: 5, launchMode: "SSH", ...input } }, owner.key)).data.createInstance);
  expect(created.instance?.id, JSON.stringify(created)).toBeDefined();
  return Number(created.instance.id.split(":")[1]);
}

describe("registry credentials", () => {
  it("names the registry of an image reference", () => {
    expect(imageRegistry("pytorch/pytorch:latest")).toBe("docker.io");
    expect(imageRegistry("ubuntu")).toBe("docker.io");
    expect(imageRegistry("ghcr.io/org/app:1")).toBe("ghcr.io");
    expect(imageRegistry("127.0.0.1:5000/team/app")).toBe("127.0.0.1:5000");
    expect(imageRegistry("localhost/app")).toBe("localhost");
  });

  it("are stored encrypted, never shown again, and reach only the assignments of the rentals that use them", async () => {
    const saved = unwrap((await app.gql(SAVE, { registry: "registry.example.com:5000", auth: { username: "deploy", password: "s3cret-saved" } }, owner.key)).data.saveRegistryCredential);
    expect(saved).toMatchObject({ registry: "registry.example.com:5000", username: "deploy" });
    const given = await rent({ image: "ghcr.io/team/private:1", registryAuth: { username: "bot", password: "s3cret-given" } });
    const fromSaved = await rent({ image: "registry.example.com:5000/team/app:2" });
    const publicImage = await rent({ image: "ubuntu:22.04" });

    // Neither password is in the database in the clear, nor in anything the API answers.
    const rows = JSON.stringify([await prisma.registryCredential.findMany(), await prisma.instance.findMany()], (_key, value) =>
      typeof value === "bigint" ? value.toString() : value,
    );
    expect(rows).not.toContain("s3cret");
    const listed = await app.gql(`{ registryCredentials { nodes { id registry username } } instances(first: 10) { edges { node { id image } } } }`, {}, owner.key);
    expect(JSON.stringify(listed)).not.toContain("s3cret");
    expect(listed.data.registryCredentials.nodes).toEqual([{ id: saved.id, registry: "registry.example.com:5000", username: "deploy" }]);
    const schema = buildSchema(await readFile(new URL("../schema.graphql", import.meta.url), "utf8"));
    // Fields named password: only the agent's assignment type and the inputs (the root types' arguments aside).
    const typesWithPassword = Object.values(schema.getTypeMap())
      .filter((type) => (isObjectType(type) || isInputObjectType(type)) && "password" in type.getFields())
      .map((type) => type.name);
    expect(typesWithPassword.sort()).toEqual(["RegistryAuth", "RegistryAuthInput"]);

    // The machine's assignments carry them, decrypted, for the rentals that use them.
    const assignments = await machineAssignments(machineId);
    const authOf = (id: number) => assignments.instances.find((instance) => instance.instanceId === id)!.registryAuth;
    expect(authOf(given)).toEqual({ registry: "ghcr.io", username: "bot", password: "s3cret-given" });
    expect(authOf(fromSaved)).toEqual({ registry: "registry.example.com:5000", username: "deploy", password: "s3cret-saved" });
    expect(authOf(publicImage)).toBeNull();

    // Replacing and removing.
    await app.gql(SAVE, { registry: "registry.example.com:5000", auth: { username: "deploy2", password: "s3cret-new" } }, owner.key);
    expect((await machineAssignments(machineId)).instances.find((instance) => instance.instanceId === fromSaved)!.registryAuth).toMatchObject({
      username: "deploy2",
      password: "s3cret-new",
    });
    const removed = await app.gql(`mutation ($id: ID!) { removeRegistryCredential(id: $id) { __typename } }`, { id: saved.id }, owner.key);
    expect(removed.data.removeRegistryCredential.__typename).toBe("MutationRemoveRegistryCredentialSuccess");
    expect((await machineAssignments(machineId)).instances.find((instance) => instance.instanceId === fromSaved)!.registryAuth).toBeNull();
  });

  it("refuses bad credentials with a typed error naming the field, and keeps other accounts out", async () => {
    const bad = unwrap((await app.gql(SAVE, { registry: "not a host", auth: { username: "u", password: "p" } }, owner.key)).data.saveRegistryCredential);
    expect(bad).toMatchObject({ __typename: "ValidationError", issues: [{ path: ["registry"] }] });
    const newline = unwrap((await app.gql(SAVE, { registry: "ghcr.io", auth: { username: "u", password: "a\nb" } }, owner.key)).data.saveRegistryCredential);
    expect(newline).toMatchObject({ __typename: "ValidationError", issues: [{ path: ["password"] }] });
    const before = await prisma.instance.count();
    const rental = unwrap((await app.gql(CREATE_INSTANCE, {
      input: { offerId: `${machineId}-1`, image: "ghcr.io/a/b", diskGb: 5, launchMode: "SSH", registryAuth: { username: "", password: "p" } },
    }, owner.key)).data.createInstance);
    expect(rental, JSON.stringify(rental)).toMatchObject({ __typename: "ValidationError", issues: [{ path: ["registryAuth", "username"] }] });
    expect(await prisma.instance.count()).toBe(before);

    const mine = unwrap((await app.gql(SAVE, { registry: "quay.io", auth: { username: "me", password: "pw" } }, owner.key)).data.saveRegistryCredential);
    const other = await createAccount("other");
    const theirs = await app.gql(`{ registryCredentials { nodes { id } } }`, {}, other.key);
    expect(theirs.data.registryCredentials.nodes).toEqual([]);
    const removed = await app.gql(`mutation ($id: ID!) { removeRegistryCredential(id: $id) { __typename ... on Error { code } } }`, { id: mine.id }, other.key);
    expect(removed.data.removeRegistryCredential).toMatchObject({ code: "NOT_FOUND" });
  });
});
