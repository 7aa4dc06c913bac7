/**
 * bench/report/format.ts: how each kind of figure is written in the tables
 * ("-" for a figure a run could not take).
 */

export type Formatter = (v: number) => string;

export const fmt = {
  rate: (v: number) =>
    !Number.isFinite(v)
      ? "-"
      : v >= 1e6
      ? `${(v / 1e6).toFixed(2)}M/s`
      : v >= 1e3
      ? `${(v / 1e3).toFixed(v >= 1e5 ? 0 : 1)}k/s`
      : `${v.toFixed(0)}/s`,
  ms: (v: number) =>
    !Number.isFinite(v)
      ? "-"
      : v >= 100
      ? `${v.toFixed(0)} ms`
      : v >= 10
      ? `${v.toFixed(1)} ms`
      : `${v.toFixed(2)} ms`,
  s: (v: number) => (!Number.isFinite(v) ? "-" : `${v.toFixed(v >= 10 ? 1 : 2)} s`),
  us: (v: number) => (!Number.isFinite(v) ? "-" : `${v.toFixed(2)} us`),
  pct: (v: number) =>
    !Number.isFinite(v) ? "-" : v >= 99.995 && v < 100 ? "99.99%" : `${+v.toFixed(2)}%`,
  count: (v: number) => (!Number.isFinite(v) ? "-" : Math.round(v).toLocaleString("en-US")),
  mb: (v: number) => (!Number.isFinite(v) ? "-" : `${v.toFixed(1)} MB`),
  kb: (v: number) => (!Number.isFinite(v) ? "-" : `${v.toFixed(1)} KB`),
  mbps: (v: number) => (!Number.isFinite(v) ? "-" : `${v.toFixed(1)} MB/s`),
  cores: (v: number) => (!Number.isFinite(v) ? "-" : `${v.toFixed(2)} cores`),
  ratio: (v: number) => (!Number.isFinite(v) ? "-" : `${v.toFixed(2)}`),
  yesNo: (v: number) => (!Number.isFinite(v) ? "-" : v >= 0.5 ? "yes" : "no"),
} satisfies Record<string, Formatter>;
