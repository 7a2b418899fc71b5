import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface Series {
  label: string;
  values: (number | null)[];
  color: string;
  /** Bars instead of a line (per-day amounts). */
  bars?: boolean;
}

interface Props {
  title: string;
  /** Unix seconds, ascending. */
  x: number[];
  series: Series[];
  yLabel: string;
  height?: number;
  formatY?: (value: number) => string;
}

/** uPlot line or bar chart sized to its container; the figure says how many points it drew. */
export function TimeSeriesChart({ title, x, series, yLabel, height = 280, formatY }: Props) {
  const container = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = container.current;
    if (!element) return;
    const options: uPlot.Options = {
      width: Math.max(element.clientWidth, 280),
      height,
      scales: { x: { time: true } },
      axes: [{}, { label: yLabel, values: formatY ? (_, ticks) => ticks.map(formatY) : undefined, size: 70 }],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          fill: s.bars ? `${s.color}99` : undefined,
          paths: s.bars ? uPlot.paths.bars?.({ size: [0.6, 40] }) : undefined,
          spanGaps: true,
          value: formatY ? (_: uPlot, v: number | null) => (v === null ? "—" : formatY(v)) : undefined,
        })),
      ],
    };
    const plot = new uPlot(options, [x, ...series.map((s) => s.values)] as uPlot.AlignedData, element);
    const observer = new ResizeObserver(() => plot.setSize({ width: Math.max(element.clientWidth, 280), height }));
    observer.observe(element);
    return () => {
      observer.disconnect();
      plot.destroy();
    };
  }, [x, series, yLabel, height, formatY]);
  const points = series.reduce((sum, s) => sum + s.values.filter((v) => v !== null).length, 0);
  return (
    <figure className="chart" aria-label={title} data-points={points}>
      <figcaption>{title}</figcaption>
      <div ref={container} />
      {points === 0 && <p className="muted">No data in this range.</p>}
    </figure>
  );
}
