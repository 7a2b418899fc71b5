/** Plain-text rendering for the CLI: tables, money, a spinner and a terminal chart. */

export interface Column<T> {
  header: string;
  value: (row: T) => string;
  /** Numbers read better right-aligned. */
  right?: boolean;
}

/** Columns padded to their widest cell, two spaces apart; a header row and nothing else. */
export function table<T>(columns: Column<T>[], rows: T[]): string {
  const cells = rows.map((row) => columns.map((column) => column.value(row)));
  const widths = columns.map((column, i) => Math.max(column.header.length, ...cells.map((line) => line[i]!.length)));
  const render = (line: string[]) =>
    line
      .map((cell, i) => (columns[i]!.right ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [render(columns.map((column) => column.header)), ...cells.map(render)].join("\n");
}

/** A Money string ("0.4", "-12.5") as dollars with at least two decimals ("$0.40", "-$12.50"); exact, no floats. */
export function dollars(money: string | null | undefined): string {
  if (money == null) return "-";
  const negative = money.startsWith("-");
  const [whole, fraction = ""] = (negative ? money.slice(1) : money).split(".");
  return `${negative ? "-" : ""}$${whole}.${fraction.padEnd(2, "0")}`;
}

/** A number with a fixed count of decimals, for display only. */
export function fixed(value: number, decimals = 1): string {
  return value.toFixed(decimals);
}

/** "2026-11-27T09:42:37.000Z" → "2026-11-27 09:42" (or "2026-11-27 09:42:37" with seconds). */
export function when(iso: string | null | undefined, seconds = false): string {
  return iso ? iso.slice(0, seconds ? 19 : 16).replace("T", " ") : "-";
}

/** "Instance:42" → "42": tables show the number people type. */
export function shortId(id: string): string {
  return id.slice(id.indexOf(":") + 1);
}

/** A spinner line on stderr while `work` runs (a TTY only; elsewhere one line saying what is happening). */
export async function withProgress<T>(stream: ProgressStream, message: string, work: () => Promise<T>): Promise<T> {
  if (!stream.isTTY) {
    stream.write(`${message}...\n`);
    return work();
  }
  const frames = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏";
  let frame = 0;
  const draw = () => stream.write(`\r${frames[frame++ % frames.length]} ${message}`);
  draw();
  const timer = setInterval(draw, 80);
  try {
    return await work();
  } finally {
    clearInterval(timer);
    stream.write("\r\x1b[2K");
  }
}

export interface ProgressStream {
  isTTY?: boolean;
  write(text: string): unknown;
}

/**
 * A line chart of `series` (same length, one value per column or null for a gap) in `height` rows,
 * with a y axis labeled by `label`; each series draws with its own mark.
 */
export function chart(series: { mark: string; values: (number | null)[] }[], options: { height?: number; label: (value: number) => string }): string {
  const height = options.height ?? 12;
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  if (all.length === 0) return "(no data)";
  const min = Math.min(...all);
  const max = Math.max(...all);
  const span = max - min || 1;
  const width = Math.max(...series.map((s) => s.values.length));
  const grid = Array.from({ length: height }, () => Array<string>(width).fill(" "));
  for (const { mark, values } of series) {
    values.forEach((value, x) => {
      if (value === null) return;
      const y = height - 1 - Math.round(((value - min) / span) * (height - 1));
      grid[y]![x] = mark;
    });
  }
  const labels = grid.map((_, row) => options.label(max - (span * row) / (height - 1)));
  const labelWidth = Math.max(...labels.map((l) => l.length));
  return grid.map((row, i) => `${labels[i]!.padStart(labelWidth)} ┤${row.join("")}`.trimEnd()).join("\n") + `\n${" ".repeat(labelWidth)} └${"─".repeat(width)}`;
}

const MICROS = 1_000_000n;

/** A Money string ("-1.25") as micro-dollars; more than 6 decimals is an error. */
export function toMicros(value: string): bigint {
  const match = /^(-?)(\d+)(?:\.(\d{1,6}))?$/.exec(value.trim());
  if (!match) throw new Error(`"${value}" is not an amount in dollars with at most 6 decimals`);
  const micros = BigInt(match[2]!) * MICROS + BigInt((match[3] ?? "").padEnd(6, "0"));
  return match[1] ? -micros : micros;
}

/** Micro-dollars as a Money string, without trailing zeros. */
export function fromMicros(total: bigint): string {
  const magnitude = total < 0n ? -total : total;
  const fraction = (magnitude % MICROS).toString().padStart(6, "0").replace(/0+$/, "");
  return `${total < 0n ? "-" : ""}${magnitude / MICROS}${fraction ? `.${fraction}` : ""}`;
}

/** Exact sum of Money strings (6 decimals at most), as a Money string. */
export function sumMoney(values: string[]): string {
  return fromMicros(values.reduce((sum, value) => sum + toMicros(value), 0n));
}
