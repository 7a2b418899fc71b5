import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const bindable = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "0.0.0.0", () => server.close(() => resolve(true)));
  });

// Ranges lie below the kernel's ephemeral ports (32768–60999 by default), where every outgoing
// connection takes its local port: a range there could be taken between the check and the engine's bind.
const FIRST_PORT = 20_000;
const SLOT_SIZE = 100;
const SLOTS = 120;

/** Reservations shared by every test process on this host (other suites run at the same time). */
const RESERVATIONS = join(tmpdir(), "gm-test-port-ranges");

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Takes a slot for this process (exclusive create); a slot held by a process that has ended is freed for later. */
function reserve(start: number): boolean {
  const path = join(RESERVATIONS, String(start));
  try {
    writeFileSync(path, String(process.pid), { flag: "wx" });
    return true;
  } catch {
    let owner = 0;
    try {
      owner = Number.parseInt(readFileSync(path, "utf8"), 10);
    } catch {
      return false; // freed meanwhile: another pick may take it
    }
    if (owner > 0 && !alive(owner)) rmSync(path, { force: true });
    return false;
  }
}

/**
 * The first port of `size` (at most 100) consecutive ones, reserved for this test process and free on
 * this host now: a machine's direct port range for a test on the shared engine.
 */
export async function freePortRange(size: number): Promise<number> {
  if (size > SLOT_SIZE) throw new Error(`at most ${SLOT_SIZE} ports per range`);
  mkdirSync(RESERVATIONS, { recursive: true });
  for (;;) {
    const start = FIRST_PORT + Math.floor(Math.random() * SLOTS) * SLOT_SIZE;
    if (!reserve(start)) continue;
    const ports = Array.from({ length: size }, (_, i) => start + i);
    if ((await Promise.all(ports.map(bindable))).every(Boolean)) return start;
    rmSync(join(RESERVATIONS, String(start)), { force: true }); // in use outside the tests: leave it
  }
}
