import { z } from "zod";

/*
 * What a container is launched with, checked the same way wherever it is given: a rental, a
 * template, an update of a rental.
 */

/** Environment variables the platform sets in every container; clients cannot override them. */
export const CONTAINER_LABEL_ENV = "CONTAINER_LABEL";
export const CONTAINER_API_KEY_ENV = "CONTAINER_API_KEY";
const RESERVED_ENV = new Set([CONTAINER_LABEL_ENV, CONTAINER_API_KEY_ENV]);

// Docker image references: [registry[:port]/]path[:tag][@sha256:digest], lowercase path. Every part
// starts with a letter or digit, so no reference can be read as an option ("--privileged/x").
const IMAGE_PATTERN =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::\d{1,5})?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

/**
 * A port to open: `8081`, `8081/udp`, `8081:8081` (host:container, identical here) with an
 * optional protocol. Numbers of 70000 and above ask for an identity mapping (the same public port
 * as inside) and must be written as `N:N`.
 */
const PORT_PATTERN = /^(\d{1,5})(?::(\d{1,5}))?(?:\/(tcp|udp))?$/;
function portIssue(spec: string): string | null {
  const match = PORT_PATTERN.exec(spec);
  if (!match) return "a port such as 8081, 8081/udp, 8081:8081 or 70000:70000";
  const [, first, second] = match;
  const a = Number(first);
  const b = second === undefined ? a : Number(second);
  if (a >= 70_000 || b >= 70_000) {
    return second !== undefined && a === b ? null : "identity ports (70000 and above) are written N:N";
  }
  if (a < 1 || a > 65_535 || b < 1 || b > 65_535) return "ports are 1 to 65535, or 70000 and above as identity N:N";
  return null;
}

/** A Docker image reference: [registry[:port]/]path[:tag][@sha256:digest], lowercase path. */
export const imageReference = z.string().trim().max(255).regex(IMAGE_PATTERN, "a Docker image reference such as pytorch/pytorch:latest");

export const MAX_ONSTART_CHARS = 4048;

/** The container's variables: names of letters, digits and _, each once, none of the platform's own. */
export const envList = z
  .array(
    z.object({
      key: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, "letters, digits and _, not starting with a digit")
        .refine((key) => !RESERVED_ENV.has(key), "set by the platform"),
      // Docker's env file and `docker run -e` carry one line per variable.
      value: z.string().max(4096).regex(/^[^\r\n]*$/, "a single line: containers cannot be given line breaks in a variable"),
    }),
  )
  .max(64)
  .superRefine((env, ctx) => {
    const seen = new Set<string>();
    env.forEach(({ key }, index) => {
      if (seen.has(key)) ctx.addIssue({ code: "custom", path: [index, "key"], message: "duplicate key" });
      seen.add(key);
    });
  });

export const portList = z
  .array(z.string().superRefine((spec, ctx) => {
    const issue = portIssue(spec);
    if (issue) ctx.addIssue({ code: "custom", message: issue });
  }))
  .max(32);

/** ENTRYPOINT mode's arguments to the image's entrypoint. */
export const argList = z.array(z.string().max(1024)).max(64);

export const launchMode = z.enum(["SSH", "JUPYTER", "ENTRYPOINT"]);

/** Whether a stored launch spec passes today's checks: a launch that fails on one that does not is the client's input, not the host. */
export function launchSpecValid(spec: { image: string; env: unknown; ports: unknown }): boolean {
  return imageReference.safeParse(spec.image).success && envList.safeParse(spec.env).success && portList.safeParse(spec.ports).success;
}
