/**
 * Renders Effect metric snapshots in the Prometheus text exposition format (version 0.0.4), as
 * served by the gateway at `GET /metrics`.
 *
 * One `# HELP` and `# TYPE` line per metric family, then one sample line per series. Counters and
 * gauges map directly; histograms become cumulative `_bucket{le="…"}` lines (ending with `+Inf`),
 * `_sum` and `_count`; summaries become `{quantile="…"}` lines, `_sum` and `_count`; a frequency
 * becomes a counter with one series per observed value (label `value`). Names and label names are
 * sanitised to the allowed character set; label values and help texts are escaped.
 */
import type { Metric } from "effect"

/** The `Content-Type` of the text exposition format. */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

/** A metric or label name with every character outside `[a-zA-Z0-9_:]` (`_` for labels: no `:`) replaced by `_`. */
export const sanitizeName = (name: string, label = false): string => {
  const cleaned = name.replace(label ? /[^a-zA-Z0-9_]/g : /[^a-zA-Z0-9_:]/g, "_")
  return cleaned === "" || /^[0-9]/.test(cleaned) ? `_${cleaned}` : cleaned
}

/** A label value escaped for the exposition format: backslash, double quote and line feed. */
export const escapeLabelValue = (value: string): string =>
  value.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")

const escapeHelp = (text: string): string => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

/** A sample value: integers and floats as JavaScript prints them, `NaN`, `+Inf`, `-Inf`. */
export const formatValue = (value: number | bigint): string => {
  if (typeof value === "bigint") return value.toString()
  if (Number.isNaN(value)) return "NaN"
  if (value === Infinity) return "+Inf"
  if (value === -Infinity) return "-Inf"
  return String(value)
}

/**
 * The `{…}` part of a sample: the attributes sorted by name, then `extra` (`le`, `quantile`,
 * `value`). An attribute named like the `reserved` label is left out of every line of the series,
 * so the buckets, `_sum` and `_count` of a histogram keep one label set.
 */
const labels = (
  attributes: Metric.Metric.AttributeSet | undefined,
  reserved?: string,
  extra?: readonly [string, string]
): string => {
  const parts: Array<string> = []
  if (attributes !== undefined) {
    for (const key of Object.keys(attributes).sort()) {
      if (reserved !== undefined && sanitizeName(key, true) === reserved) continue
      parts.push(`${sanitizeName(key, true)}="${escapeLabelValue(String(attributes[key]))}"`)
    }
  }
  if (extra !== undefined) parts.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`)
  return parts.length === 0 ? "" : `{${parts.join(",")}}`
}

const TYPES: Record<Metric.Metric.Snapshot["type"], string> = {
  Counter: "counter",
  Gauge: "gauge",
  Histogram: "histogram",
  Summary: "summary",
  Frequency: "counter"
}

const samples = (name: string, snapshot: Metric.Metric.Snapshot, out: Array<string>): void => {
  const attrs = snapshot.attributes
  switch (snapshot.type) {
    case "Counter":
      out.push(`${name}${labels(attrs)} ${formatValue(snapshot.state.count)}`)
      return
    case "Gauge":
      out.push(`${name}${labels(attrs)} ${formatValue(snapshot.state.value)}`)
      return
    case "Histogram": {
      const state = snapshot.state
      for (const [boundary, cumulative] of state.buckets) {
        out.push(`${name}_bucket${labels(attrs, "le", ["le", formatValue(boundary)])} ${formatValue(cumulative)}`)
      }
      out.push(`${name}_bucket${labels(attrs, "le", ["le", "+Inf"])} ${formatValue(state.count)}`)
      out.push(`${name}_sum${labels(attrs, "le")} ${formatValue(state.sum)}`)
      out.push(`${name}_count${labels(attrs, "le")} ${formatValue(state.count)}`)
      return
    }
    case "Summary": {
      const state = snapshot.state
      for (const [quantile, value] of state.quantiles) {
        out.push(
          `${name}${labels(attrs, "quantile", ["quantile", formatValue(quantile)])} ${
            value === undefined ? "NaN" : formatValue(value)
          }`
        )
      }
      out.push(`${name}_sum${labels(attrs, "quantile")} ${formatValue(state.sum)}`)
      out.push(`${name}_count${labels(attrs, "quantile")} ${formatValue(state.count)}`)
      return
    }
    case "Frequency":
      for (const [value, count] of snapshot.state.occurrences) {
        out.push(`${name}${labels(attrs, "value", ["value", value])} ${formatValue(count)}`)
      }
      return
  }
}

/**
 * Renders snapshots (from `Metric.snapshot`) as one exposition document, families sorted by name
 * and series by their labels, so consecutive scrapes are stable and diffable.
 */
export const render = (snapshots: ReadonlyArray<Metric.Metric.Snapshot>): string => {
  const families = new Map<string, Array<Metric.Metric.Snapshot>>()
  for (const snapshot of snapshots) {
    const name = sanitizeName(snapshot.id)
    const family = families.get(name)
    if (family === undefined) families.set(name, [snapshot])
    else family.push(snapshot)
  }
  const out: Array<string> = []
  for (const name of [...families.keys()].sort()) {
    const family = families.get(name)!
    const first = family[0]!
    const description = family.find((s) => s.description !== undefined)?.description
    out.push(`# HELP ${name} ${escapeHelp(description ?? first.id)}`)
    out.push(`# TYPE ${name} ${TYPES[first.type]}`)
    const series = family
      .filter((s) => s.type === first.type) // one type per family: a clash keeps the first
      .map((s) => ({ key: labels(s.attributes), snapshot: s }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    for (const { snapshot } of series) samples(name, snapshot, out)
  }
  return out.length === 0 ? "" : `${out.join("\n")}\n`
}
