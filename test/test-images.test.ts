import { beforeAll, describe, expect, it } from "vitest";
import { runOk } from "../agent/exec.ts";
import { type TestImages, testImages } from "./support/images.ts";

let images: TestImages;

beforeAll(async () => {
  images = await testImages();
}, 15 * 60_000);

describe("test images on the local registry", () => {
  it("pull from 127.0.0.1:5000 and hold what their names promise", async () => {
    for (const ref of Object.values(images)) {
      expect(ref).toMatch(/^127\.0\.0\.1:5000\/gm-test\//);
      await runOk("docker", ["pull", ref]);
    }
    const inImage = (ref: string, script: string) => runOk("docker", ["run", "--rm", "--entrypoint", "/bin/sh", ref, "-c", script]);
    expect(await inImage(images.ssh, "test -x /usr/sbin/sshd && echo sshd")).toBe("sshd\n");
    expect(await inImage(images.jupyter, "python3 -c 'import jupyter_server; print(\"jupyter\")'")).toBe("jupyter\n");
    expect(await inImage(images.plain, "test -e /usr/sbin/sshd || echo none")).toBe("none\n");
    const entrypoint = JSON.parse(await runOk("docker", ["image", "inspect", "--format", "{{json .Config}}", images.entrypoint]));
    expect(entrypoint.Entrypoint).toHaveLength(3);
    expect(entrypoint.Cmd ?? []).toEqual([]);
  });
});
