import { createServer } from "node:net";

const bindable = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "0.0.0.0", () => server.close(() => resolve(true)));
  });

/**
 * The first port of `size` consecutive ones, all free on this host now: a machine's direct port range
 * for a test on the shared engine (other runs and engineers use it at the same time).
 */
export async function freePortRange(size: number): Promise<number> {
  for (;;) {
    const start = 41_000 + Math.floor(Math.random() * 2_000) * 10;
    const ports = Array.from({ length: size }, (_, i) => start + i);
    if ((await Promise.all(ports.map(bindable))).every(Boolean)) return start;
  }
}
