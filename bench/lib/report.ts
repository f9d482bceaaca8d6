/**
 * Summaries printed after the measurements: the markdown table of medians (with each Herald row's
 * ratio to its baseline from the same run) and the memory-growth verdicts.
 */
import type { Measurement, SystemInfo, Workload } from "./types.ts"
import { median } from "./util.ts"

export interface Cell {
  readonly workload: Workload
  readonly concurrency: number
}

const fmt = (x: number, digits = 3): string =>
  x >= 1000 ? Math.round(x).toLocaleString("en-US") : x >= 100 ? x.toFixed(0) : x === 0 ? "0" : Number(x.toPrecision(digits)).toString()

interface Medians {
  readonly ops: number
  readonly p50: number
  readonly p99: number
}

/** The markdown table: one row per (cell, system), medians over the runs that passed. */
export const table = (
  cells: ReadonlyArray<Cell>,
  systems: ReadonlyArray<SystemInfo>,
  results: ReadonlyArray<Measurement>,
  skipped: ReadonlyMap<string, string>
): string => {
  const lines = [
    "| workload | C / W | system | throughput /s | p50 ms | p99 ms | throughput × baseline | p50 × baseline | runs ok |",
    "|---|---:|---|---:|---:|---:|---:|---:|---:|"
  ]
  for (const cell of cells) {
    const medians = new Map<string, Medians>()
    const rows: Array<[SystemInfo, Array<Measurement>]> = systems.map((s) => [
      s,
      results.filter((r) => r.system === s.id && r.workload === cell.workload && r.concurrency === cell.concurrency && r.round !== "memory")
    ])
    for (const [s, runs] of rows) {
      const ok = runs.filter((r) => r.ok)
      if (ok.length > 0) {
        medians.set(s.id, { ops: median(ok.map((r) => r.ops_per_s)), p50: median(ok.map((r) => r.p50_ms)), p99: median(ok.map((r) => r.p99_ms)) })
      }
    }
    const unit = cell.workload === "command" ? "calls" : "deliveries"
    for (const [s, runs] of rows) {
      const m = medians.get(s.id)
      const base = s.baseline === undefined ? undefined : medians.get(s.baseline)
      const failed = runs.length - runs.filter((r) => r.ok).length
      const status = runs.length === 0 ? (skipped.has(s.id) ? "skipped" : "-") : `${runs.length - failed}/${runs.length}${failed > 0 ? " **FAILED**" : ""}`
      const ratio = (a: number, b: number) => (b > 0 ? `${fmt(a / b)}×` : "-")
      lines.push(
        `| ${cell.workload} (${unit}) | ${cell.concurrency} | ${s.id} | ${m ? fmt(m.ops) : "-"} | ${m ? fmt(m.p50) : "-"} | ${m ? fmt(m.p99) : "-"} | ${
          m && base ? ratio(m.ops, base.ops) : ""
        } | ${m && base ? ratio(m.p50, base.p50) : ""} | ${status} |`
      )
    }
  }
  return lines.join("\n")
}

export interface MemoryVerdict {
  readonly atBaseline: number
  readonly end: number
  readonly max: number
  readonly growthPct: number
  readonly pass: boolean
}

/** RSS growth from `baselineS` seconds into the window to its last second; must stay under `limitPct`. */
export const memoryVerdict = (
  samples: ReadonlyArray<readonly [number, number]>,
  windowS: number,
  baselineS: number,
  limitPct = 10
): MemoryVerdict | undefined => {
  const mean = (xs: ReadonlyArray<readonly [number, number]>) => xs.reduce((a, [, mb]) => a + mb, 0) / xs.length
  const around = samples.filter(([t]) => t >= baselineS - 1 && t <= baselineS)
  const last = samples.filter(([t]) => t >= windowS - 1)
  if (around.length === 0 || last.length === 0) return undefined
  const atBaseline = mean(around)
  const end = mean(last)
  const growthPct = ((end - atBaseline) / atBaseline) * 100
  const max = Math.max(...samples.filter(([t]) => t >= baselineS).map(([, mb]) => mb))
  return { atBaseline, end, max, growthPct, pass: growthPct < limitPct }
}
