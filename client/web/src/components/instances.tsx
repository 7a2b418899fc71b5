import { useEffect, useState } from "react";
import type { InstanceRowFragment } from "../gql/graphql.ts";

/** The per-hour price of the GPUs: the bid for interruptible rentals, the locked price otherwise. */
export function gpuRate(instance: Pick<InstanceRowFragment, "kind" | "bidPerGpuHour" | "pricePerGpuHour">): string {
  return instance.kind === "INTERRUPTIBLE" && instance.bidPerGpuHour ? instance.bidPerGpuHour : instance.pricePerGpuHour;
}

export function StatusBadge({ status }: { status: string }) {
  return <span className={`status ${status}`}>{status}</span>;
}

/** Re-renders every `ms`, for "time left" columns. */
export function useNow(ms = 30_000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}
