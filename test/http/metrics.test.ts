/** `GET /metrics`: Prometheus text exposition of every metric, checked by a strict parser. */
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Metric } from "effect"
import * as fc from "fast-check"
import * as HttpGateway from "../../src/http/HttpGateway.ts"
import * as Prometheus from "../../src/http/prometheus.ts"
import { GatewayLive, gatewayOptions } from "./fixtures.ts"

// ---------------------------------------------------------------------------------------------
// a strict parser of the text exposition format (version 0.0.4)
// ---------------------------------------------------------------------------------------------

interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}
interface Family {
  readonly type: string
  readonly help: string
  readonly samples: Array<Sample>
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/

const parseValue = (text: string, line: string): number => {
  if (text === "+Inf") return Infinity
  if (text === "-Inf") return -Infinity
  if (text === "NaN") return NaN
  if (!/^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/.test(text)) throw new Error(`bad value in: ${line}`)
  return Number(text)
}

/** Parses `{a="x",b="y"}` starting at `i`; returns the labels and the index after `}`. */
const parseLabels = (line: string, start: number): [Record<string, string>, number] => {
  const labels: Record<string, string> = {}
  let i = start + 1
  while (line[i] !== "}") {
    const eq = line.indexOf("=", i)
    if (eq < 0) throw new Error(`label without '=': ${line}`)
    const name = line.slice(i, eq)
    if (!LABEL.test(name)) throw new Error(`bad label name ${name}: ${line}`)
    if (name in labels) throw new Error(`duplicate label ${name}: ${line}`)
    if (line[eq + 1] !== "\"") throw new Error(`unquoted label value: ${line}`)
    let value = ""
    let j = eq + 2
    for (;;) {
      const c = line[j]
      if (c === undefined) throw new Error(`unterminated label value: ${line}`)
      if (c === "\"") break
      if (c === "\\") {
        const next = line[j + 1]
        if (next === "\\") value += "\\"
        else if (next === "\"") value += "\""
        else if (next === "n") value += "\n"
        else throw new Error(`bad escape \\${next}: ${line}`)
        j += 2
      } else {
        value += c
        j++
      }
    }
    labels[name] = value
    i = j + 1
    if (line[i] === ",") i++
    else if (line[i] !== "}") throw new Error(`expected ',' or '}': ${line}`)
  }
  return [labels, i + 1]
}

const parse = (text: string): Map<string, Family> => {
  const families = new Map<string, Family>()
  let current: string | undefined
  if (text !== "" && !text.endsWith("\n")) throw new Error("the document must end with a line feed")
  for (const line of text.split("\n").slice(0, -1)) {
    if (line.startsWith("# HELP ")) {
      const [, name, ...rest] = line.slice(2).split(" ")
      if (!NAME.test(name!) || families.has(name!)) throw new Error(`bad or repeated HELP: ${line}`)
      families.set(name!, { type: "", help: rest.join(" "), samples: [] })
      current = name
      continue
    }
    if (line.startsWith("# TYPE ")) {
      const [, name, type] = line.slice(2).split(" ")
      if (name !== current) throw new Error(`TYPE for another family than the HELP before: ${line}`)
      if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(type!)) throw new Error(`bad type: ${line}`)
      families.set(name!, { ...families.get(name!)!, type: type! })
      continue
    }
    if (line.startsWith("#") || line === "") throw new Error(`unexpected line: ${JSON.stringify(line)}`)
    const brace = line.indexOf("{")
    const space = line.indexOf(" ")
    const nameEnd = brace >= 0 && brace < space ? brace : space
    const name = line.slice(0, nameEnd)
    if (!NAME.test(name)) throw new Error(`bad metric name: ${line}`)
    const [labels, after] = brace === nameEnd ? parseLabels(line, brace) : [{}, nameEnd]
    if (line[after] !== " ") throw new Error(`expected one space before the value: ${line}`)
    const value = parseValue(line.slice(after + 1), line)
    const family = families.get(current ?? "")
    if (family === undefined) throw new Error(`sample before any TYPE: ${line}`)
    const suffixes = family.type === "histogram" ? ["_bucket", "_sum", "_count"] : family.type === "summary" ? ["", "_sum", "_count"] : [""]
    if (!suffixes.some((s) => name === `${current}${s}`)) throw new Error(`sample ${name} outside its family ${current}`)
    family.samples.push({ name, labels, value })
  }
  for (const [name, family] of families) {
    if (family.type === "") throw new Error(`family ${name} without TYPE`)
    if (family.type === "histogram") checkHistogram(name, family)
  }
  return families
}

/** Buckets are cumulative, end with `+Inf`, and `+Inf` equals `_count`. */
const checkHistogram = (name: string, family: Family) => {
  const series = new Map<string, Array<Sample>>()
  for (const sample of family.samples.filter((s) => s.name === `${name}_bucket`)) {
    const { le, ...rest } = sample.labels
    if (le === undefined) throw new Error(`${name}_bucket without le`)
    const key = JSON.stringify(rest)
    series.set(key, [...(series.get(key) ?? []), sample])
  }
  for (const [key, buckets] of series) {
    const les = buckets.map((b) => parseValue(b.labels.le!, key))
    for (let i = 1; i < buckets.length; i++) {
      if (!(les[i]! > les[i - 1]!)) throw new Error(`${name}: le not increasing`)
      if (buckets[i]!.value < buckets[i - 1]!.value) throw new Error(`${name}: buckets not cumulative`)
    }
    if (les[les.length - 1] !== Infinity) throw new Error(`${name}: last bucket is not +Inf`)
    const count = family.samples.find((s) => s.name === `${name}_count` && JSON.stringify(s.labels) === key)
    if (count === undefined || count.value !== buckets[buckets.length - 1]!.value) throw new Error(`${name}: +Inf != _count`)
  }
}

const find = (families: Map<string, Family>, sample: string, labels: Record<string, string>): number => {
  const family = families.get(sample) ?? families.get(sample.replace(/_(bucket|sum|count)$/, ""))
  const hit = family?.samples.find((s) =>
    s.name === sample && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  )
  return hit?.value ?? 0
}

// ---------------------------------------------------------------------------------------------

const scrape = Effect.flatMap(HttpGateway.Gateway, ({ url }) =>
  Effect.promise(async () => {
    const response = await fetch(`${url}/metrics`)
    return { status: response.status, contentType: response.headers.get("content-type"), text: await response.text() }
  }))

const call = (path: string, body: unknown) =>
  Effect.flatMap(HttpGateway.Gateway, ({ url }) =>
    Effect.promise(() =>
      fetch(`${url}${path}`, {
        method: "POST",
        body: JSON.stringify(body),
        headers: { "content-type": "application/json", authorization: "Bearer alice-token" }
      }).then((r) => r.status)
    ))

layer(GatewayLive, { excludeTestServices: true })("GET /metrics", (it) => {
  it.effect("serves Prometheus text a strict parser accepts, and the command counters move with calls", () =>
    Effect.gen(function*() {
      const before = parse((yield* scrape).text)
      assert.deepStrictEqual(
        [yield* call("/api/calculator/v1/add", { a: 1, b: 2 }), yield* call("/api/calculator/v1/add", { a: 2, b: 2 })],
        [200, 200]
      )
      assert.strictEqual(yield* call("/api/calculator/v1/add", { a: 1000, b: 1 }), 422 /* Overflow */)
      const reply = yield* scrape
      assert.strictEqual(reply.status, 200)
      assert.strictEqual(reply.contentType, Prometheus.CONTENT_TYPE)
      const after = parse(reply.text)
      const add = { service: "calculator", version: "1", command: "add" }
      const delta = (sample: string, labels: Record<string, string>) =>
        find(after, sample, labels) - find(before, sample, labels)
      assert.strictEqual(delta("herald_client_calls_total", { ...add, outcome: "ok" }), 2)
      assert.strictEqual(delta("herald_client_calls_total", { ...add, outcome: "Overflow" }), 1)
      assert.strictEqual(delta("herald_command_handled_total", { ...add, outcome: "ok" }), 2)
      assert.strictEqual(delta("herald_command_handled_total", { ...add, outcome: "error" }), 1)
      assert.strictEqual(delta("herald_command_duration_seconds_count", add), 3)
      assert.strictEqual(delta("herald_client_call_duration_seconds_count", add), 3)
      assert.isAbove(delta("herald_command_duration_seconds_sum", add), 0)
      assert.strictEqual(find(after, "herald_command_in_flight", add), 0)
      assert.strictEqual(after.get("herald_command_handled_total")?.type, "counter")
      assert.strictEqual(after.get("herald_command_duration_seconds")?.type, "histogram")
      assert.strictEqual(after.get("herald_command_in_flight")?.type, "gauge")
    }))

  it.effect("is listed in the OpenAPI document, without security", () =>
    Effect.gen(function*() {
      const { openapi } = yield* HttpGateway.Gateway
      assert.deepStrictEqual(openapi.paths["/metrics"]!.get!.security, [])
      assert.isDefined(openapi.paths["/metrics"]!.get!.responses[200])
    }))
})

describe("metrics option", () => {
  it("metrics: false leaves /metrics out of the document", () => {
    assert.isUndefined(HttpGateway.openApi({ ...gatewayOptions, metrics: false }).paths["/metrics"])
    assert.isDefined(HttpGateway.openApi(gatewayOptions).paths["/metrics"])
  })
})

describe("Prometheus.render", () => {
  it("label values and help texts survive any content (escaping round trip)", () => {
    fc.assert(fc.property(fc.string(), fc.string(), fc.string(), (value, other, help) => {
      const counter = Metric.counter("herald_test_escaping_total", { description: help })
      const snapshot = {
        id: counter.id,
        type: "Counter" as const,
        description: help,
        attributes: { "odd-label.name": value, b: other },
        state: { count: 3, incremental: true }
      }
      const families = parse(Prometheus.render([snapshot]))
      const sample = families.get("herald_test_escaping_total")!.samples[0]!
      assert.strictEqual(sample.labels["odd_label_name"], value)
      assert.strictEqual(sample.labels["b"], other)
      assert.strictEqual(sample.value, 3)
    }), { numRuns: 300 })
  })

  it("histograms, summaries, gauges, odd numbers and names render as valid exposition text", () => {
    const text = Prometheus.render([
      {
        id: "lat-ency",
        type: "Histogram",
        description: "multi\nline \\ help",
        attributes: { le: "clash" },
        state: { buckets: [[0.5, 1], [1, 3]], count: 4, min: 0.1, max: 2, sum: 4.5 }
      },
      {
        id: "q",
        type: "Summary",
        description: undefined,
        attributes: undefined,
        state: { quantiles: [[0.5, 1], [0.99, undefined]], count: 2, min: 0, max: 1, sum: 1 }
      },
      { id: "g", type: "Gauge", description: undefined, attributes: { a: "1" }, state: { value: -Infinity } },
      { id: "1bad", type: "Gauge", description: undefined, attributes: undefined, state: { value: 10n } },
      { id: "f", type: "Frequency", description: "freq", attributes: undefined, state: { occurrences: new Map([["x\"y", 2]]) } }
    ])
    const families = parse(text)
    assert.deepStrictEqual([...families.keys()], ["_1bad", "f", "g", "lat_ency", "q"])
    assert.strictEqual(find(families, "lat_ency_bucket", { le: "+Inf" }), 4)
    assert.strictEqual(find(families, "lat_ency_bucket", { le: "1" }), 3)
    assert.strictEqual(families.get("lat_ency")!.help, "multi\\nline \\\\ help")
    assert.isNaN(families.get("q")!.samples.find((s) => s.labels.quantile === "0.99")!.value)
    assert.strictEqual(find(families, "g", { a: "1" }), -Infinity)
    assert.strictEqual(find(families, "_1bad", {}), 10)
    assert.strictEqual(find(families, "f", { value: "x\"y" }), 2)
  })
})
