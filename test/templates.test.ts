import { beforeAll, describe, expect, it } from "vitest";
import { parseDockerOptions } from "../domain/instances/dockerOptions.ts";
import { ValidationError } from "../domain/errors.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { CREATE_INSTANCE, createAccount, createListedMachine, unwrap } from "./support/rentals.ts";

const app = useTestApp();

let owner: { userId: number; key: string };
let other: { userId: number; key: string };
let machineId: number;

beforeAll(async () => {
  owner = await createAccount("owner");
  other = await createAccount("other");
  machineId = await createListedMachine((await createAccount("host")).userId);
});

const CREATE_TEMPLATE = /* GraphQL */ `
  mutation ($input: CreateTemplateInput!) {
    createTemplate(input: $input) {
      __typename
      ... on MutationCreateTemplateSuccess {
        data { id name imageReference launchMode dockerOptions ports env { key value } onstart args recommendedDiskGb public mine }
      }
      ... on Error { code message }
      ... on ValidationError { issues { path message } }
    }
  }
`;

const TEMPLATES = /* GraphQL */ `
  query ($query: String, $mine: Boolean, $recommended: Boolean) {
    templates(query: $query, mine: $mine, recommended: $recommended, first: 50) {
      edges { node { id name imageReference launchMode recommended public mine } }
    }
  }
`;

async function createTemplate(input: Record<string, unknown>, key = owner.key) {
  const result = await app.gql(CREATE_TEMPLATE, { input }, key);
  expect(result.errors).toBeUndefined();
  return unwrap(result.data.createTemplate);
}

async function templates(variables: Record<string, unknown>, key = owner.key): Promise<any[]> {
  const result = await app.gql(TEMPLATES, variables, key);
  expect(result.errors).toBeUndefined();
  return result.data.templates.edges.map((edge: any) => edge.node);
}

describe("docker options", () => {
  it("reads -p and -e as the reference does, with shell quoting", () => {
    expect(parseDockerOptions(`-p 8081:8081 -p 70000:70000 -e TZ=UTC -e TASK="a b" --env 'Q=x=y' -p 53/udp --publish=8082:8082 -e E=`)).toEqual({
      ports: ["8081:8081", "70000:70000", "53/udp", "8082:8082"],
      env: [
        { key: "TZ", value: "UTC" },
        { key: "TASK", value: "a b" },
        { key: "Q", value: "x=y" },
        { key: "E", value: "" },
      ],
    });
    expect(parseDockerOptions("  ")).toEqual({ ports: [], env: [] });
  });

  it.each([
    ["-v /:/host", /unsupported docker option "-v"/],
    ["--privileged", /unsupported docker option "--privileged"/],
    ["-p", /-p needs a value/],
    ["-e NOVALUE", /write KEY=value/],
    ["-p 0:1", /-p "0:1": ports are 1 to 65535/],
    ["-e 1X=2", /-e 1X: letters, digits and _/],
    ["-e CONTAINER_API_KEY=x", /set by the platform/],
    ['-e A="unterminated', /unterminated " quote/],
    ["8081:8081", /unexpected "8081:8081"/],
  ])("refuses %s, naming the field", (text, message) => {
    let error: unknown;
    try {
      parseDockerOptions(text);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).issues).toEqual([{ path: ["dockerOptions"], message: expect.stringMatching(message) }]);
  });
});

describe("templates", () => {
  it("seeds recommended public templates, found by query", async () => {
    const recommended = await templates({ recommended: true });
    expect(recommended.map((t) => t.name)).toEqual(expect.arrayContaining(["PyTorch", "Ubuntu"]));
    expect(recommended.every((t) => t.recommended && t.public && !t.mine)).toBe(true);
    const found = await templates({ query: "pytorch" });
    expect(found.map((t) => t.name)).toContain("PyTorch");
    expect(found.map((t) => t.name)).not.toContain("Ubuntu");
  });

  it("keeps private templates to their owner and shows public ones to everyone", async () => {
    const secret = await createTemplate({ name: "secret training box", image: "registry.local/team/trainer", tag: "v3", launchMode: "SSH" });
    const shared = await createTemplate({ name: "shared inference box", image: "org/infer", launchMode: "ENTRYPOINT", public: true });
    expect(secret).toMatchObject({ imageReference: "registry.local/team/trainer:v3", public: false, mine: true, recommendedDiskGb: 10 });
    expect(shared).toMatchObject({ imageReference: "org/infer:latest", public: true, mine: true });

    expect((await templates({ query: "box" })).map((t) => t.name)).toEqual(["secret training box", "shared inference box"]);
    expect((await templates({ query: "box" }, other.key)).map((t) => t.name)).toEqual(["shared inference box"]);
    expect((await templates({ mine: true }, other.key))).toEqual([]);

    // Another account can neither launch nor delete the private one.
    const launched = await app.gql(CREATE_INSTANCE, { input: { offerId: `${machineId}-1`, templateId: secret.id } }, other.key);
    expect(unwrap(launched.data.createInstance)).toMatchObject({ code: "NOT_FOUND" });
    const deleted = await app.gql(`mutation ($id: ID!) { deleteTemplate(id: $id) { __typename ... on Error { code } } }`, { id: secret.id }, other.key);
    expect(deleted.data.deleteTemplate).toMatchObject({ code: "NOT_FOUND" });
    const mine = await app.gql(`mutation ($id: ID!) { deleteTemplate(id: $id) { __typename } }`, { id: secret.id }, owner.key);
    expect(mine.data.deleteTemplate.__typename).toBe("MutationDeleteTemplateSuccess");
    expect((await templates({ query: "secret" })).length).toBe(0);
  });

  it("refuses oversized and malformed templates with a typed error naming the field, writing nothing", async () => {
    const before = await prisma.template.count();
    const cases: [Record<string, unknown>, string[]][] = [
      [{ name: "x".repeat(65) }, ["name"]],
      [{ onstart: "x".repeat(5000) }, ["onstart"]],
      [{ dockerOptions: "-e A=1 ".repeat(1000) }, ["dockerOptions"]],
      [{ dockerOptions: "-v /:/host" }, ["dockerOptions"]],
      [{ description: "x".repeat(2001) }, ["description"]],
      [{ args: Array.from({ length: 65 }, () => "a") }, ["args"]],
      [{ recommendedDiskGb: 0 }, ["recommendedDiskGb"]],
      [{ image: "Not An Image" }, ["image"]],
      [{ image: "ubuntu:22.04" }, ["image"]],
      [{ tag: "bad tag" }, ["tag"]],
    ];
    for (const [override, path] of cases) {
      const result = await createTemplate({ name: "t", image: "ubuntu", launchMode: "SSH", ...override });
      expect(result.__typename, JSON.stringify(override).slice(0, 60)).toBe("ValidationError");
      expect(result.issues.map((issue: any) => issue.path)).toContainEqual(path);
    }
    expect(await prisma.template.count()).toBe(before);
  });

  it("launches an instance from a template, with its ports, env and disk, and overrides", async () => {
    const template = await createTemplate({
      name: "web app",
      image: "org/web",
      tag: "1.2",
      launchMode: "ENTRYPOINT",
      dockerOptions: "-p 8081:8081 -p 70000:70000 -e MODE=prod -e TZ=UTC",
      onstart: "echo from the template",
      args: ["--serve"],
      recommendedDiskGb: 25,
    });
    expect(template).toMatchObject({ ports: ["8081:8081", "70000:70000"], env: [{ key: "MODE", value: "prod" }, { key: "TZ", value: "UTC" }] });

    const plain = unwrap((await app.gql(CREATE_INSTANCE, { input: { offerId: `${machineId}-1`, templateId: template.id } }, owner.key)).data.createInstance);
    const row = await prisma.instance.findUniqueOrThrow({ where: { id: Number(plain.instance.id.split(":")[1]) } });
    expect(row).toMatchObject({
      image: "org/web:1.2",
      launchMode: "ENTRYPOINT",
      diskGb: 25,
      onstart: "echo from the template",
      args: ["--serve"],
      ports: ["8081:8081", "70000:70000"],
      env: [{ key: "MODE", value: "prod" }, { key: "TZ", value: "UTC" }],
      templateId: Number(template.id.split(":")[1]),
    });

    const overridden = unwrap((await app.gql(CREATE_INSTANCE, {
      input: {
        offerId: `${machineId}-1`,
        templateId: template.id,
        image: "org/web:1.3",
        diskGb: 40,
        env: [{ key: "MODE", value: "dev" }],
        dockerOptions: "-p 9000:9000 -e EXTRA=1",
        args: [],
      },
    }, owner.key)).data.createInstance);
    const row2 = await prisma.instance.findUniqueOrThrow({ where: { id: Number(overridden.instance.id.split(":")[1]) } });
    expect(row2).toMatchObject({
      image: "org/web:1.3",
      diskGb: 40,
      args: [],
      ports: ["8081:8081", "70000:70000", "9000:9000"],
      env: [{ key: "TZ", value: "UTC" }, { key: "EXTRA", value: "1" }, { key: "MODE", value: "dev" }],
    });
  });

  it("needs image, disk and launch mode without a template, and refuses bad docker options on a rental", async () => {
    const before = await prisma.instance.count();
    const bare = unwrap((await app.gql(CREATE_INSTANCE, { input: { offerId: `${machineId}-1` } }, owner.key)).data.createInstance);
    expect(bare.__typename).toBe("ValidationError");
    expect(bare.issues.map((issue: any) => issue.path)).toEqual(expect.arrayContaining([["image"], ["diskGb"], ["launchMode"]]));
    const badOptions = unwrap((await app.gql(CREATE_INSTANCE, {
      input: { offerId: `${machineId}-1`, image: "ubuntu:22.04", diskGb: 10, launchMode: "SSH", dockerOptions: "--network host" },
    }, owner.key)).data.createInstance);
    expect(badOptions).toMatchObject({ __typename: "ValidationError", issues: [{ path: ["dockerOptions"] }] });
    const badTemplateId = unwrap((await app.gql(CREATE_INSTANCE, { input: { offerId: `${machineId}-1`, templateId: "Machine:1" } }, owner.key)).data.createInstance);
    expect(badTemplateId).toMatchObject({ __typename: "ValidationError", issues: [{ path: ["templateId"] }] });
    expect(await prisma.instance.count()).toBe(before);
  });
});
