/**
 * `npm run soak`: a long mixed load on each bridge, checking that memory plateaus.
 *
 *   npm run soak [-- --bridges memory,nats,mqtt,amqp] [--duration 120] [--interval 10] [--rate 200]
 *
 * Each bridge runs in a fresh Node process with `--expose-gc` (the Herald system of the benchmark,
 * `bench/systems/herald-<bridge>.ts`: a calculator service and a caller, a publisher and 2
 * subscribing services, each role with its own connection). The load is paced: `rate` calls and
 * `rate` events per second (2 subscribers each), at most 512 in flight. Every `interval` seconds the
 * process samples its RSS, and its heap and external memory after a full GC. The plateau rule is in
 * `bench/lib/soak.ts`: every sample of the last half must stay within 10 % + 2 MB of the sample at
 * 30 s in live memory (heap + external after GC), and within 25 % in RSS.
 *
 * stdout: one table per bridge and a verdict line. Exit code 1 when a bridge's memory did not
 * plateau, a call or publish failed, a result was wrong or an event was lost (the events are not
 * durable: a broker restart during the run loses some; the bridges' reconnections are noted). A
 * bridge whose broker does not accept connections is skipped with a message.
 */
import { spawn } from "node:child_process"
import { parseArgs } from "node:util"
import { Effect, Metric } from "effect"
import * as Metrics from "../src/Metrics.ts"
import { defaultRule, plateau, runSoak, type SoakOptions, type SoakResult, type SoakSample } from "./lib/soak.ts"
import { probeBroker } from "./lib/spawn.ts"
import type { SystemModule } from "./lib/types.ts"
import { describe } from "./lib/util.ts"
import { systemById } from "./systems/index.ts"

const BRIDGES = ["memory", "nats", "mqtt", "amqp"] as const

const { values } = parseArgs({
  options: {
    bridges: { type: "string" },
    duration: { type: "string", default: "120" },
    interval: { type: "string", default: "10" },
    rate: { type: "string", default: "200" },
    child: { type: "string" },
    help: { type: "boolean", default: false }
  }
})

const positive = (name: string, value: string): number => {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) {
    console.error(`--${name} must be a positive number, got ${JSON.stringify(value)}`)
    process.exit(2)
  }
  return n
}

const options: SoakOptions = {
  durationS: positive("duration", values.duration),
  intervalS: positive("interval", values.interval),
  rate: positive("rate", values.rate),
  subscribers: 2,
  timeoutMs: 5000
}

type ChildMessage =
  | { readonly type: "sample"; readonly sample: SoakSample }
  | { readonly type: "result"; readonly result: SoakResult; readonly reconnects: number }
  | { readonly type: "error"; readonly error: string }

if (values.help) {
  console.log("npm run soak -- [--bridges memory,nats,mqtt,amqp] [--duration 120] [--interval 10] [--rate 200]")
  process.exit(0)
}

if (values.child !== undefined) {
  // child: one system, reporting samples and the result over IPC
  const send = (m: ChildMessage) => new Promise<void>((resolve) => (process.send ? process.send(m, () => resolve()) : resolve()))
  const info = systemById(values.child)
  try {
    if (info === undefined) throw new Error(`unknown system ${values.child}`)
    const { system } = (await import(new URL(`./systems/${info.file}`, import.meta.url).href)) as { system: SystemModule }
    const result = await runSoak(system, options, (sample) => void send({ type: "sample", sample }))
    // reconnections of the bridges of this process: a broker restart or a dropped connection
    const bridge = values.child.replace(/^herald-/, "")
    const reconnects = Effect.runSync(Metric.value(Metric.withAttributes(Metrics.bridgeReconnects, { bridge }))).count
    await send({ type: "result", result, reconnects })
  } catch (e) {
    await send({ type: "error", error: describe(e) })
  }
  process.exit(0)
}

const bridges = values.bridges === undefined ? [...BRIDGES] : values.bridges.split(",").map((b) => b.trim()).filter((b) => b !== "")
for (const b of bridges) {
  if (!(BRIDGES as ReadonlyArray<string>).includes(b)) {
    console.error(`unknown bridge ${JSON.stringify(b)}; known: ${BRIDGES.join(", ")}`)
    process.exit(2)
  }
}

interface ChildOutcome {
  readonly samples: Array<SoakSample>
  readonly result?: SoakResult
  readonly reconnects?: number
  readonly error?: string
}

const runChild = (system: string): Promise<ChildOutcome> =>
  new Promise((resolve) => {
    const args = ["--expose-gc", new URL(import.meta.url).pathname, "--child", system,
      "--duration", String(options.durationS), "--interval", String(options.intervalS), "--rate", String(options.rate)]
    const child = spawn(process.execPath, args, { stdio: ["ignore", "inherit", "inherit", "ipc"] })
    const samples: Array<SoakSample> = []
    let result: SoakResult | undefined
    let reconnects: number | undefined
    let error: string | undefined
    child.on("message", (m: ChildMessage) => {
      if (m.type === "sample") {
        samples.push(m.sample)
        const s = m.sample
        console.error(`  ${system} ${s.t} s: RSS ${s.rssMb} MB, after GC heap ${s.heapMb ?? "?"} MB + external ${s.externalMb ?? "?"} MB`)
      } else if (m.type === "result") {
        result = m.result
        reconnects = m.reconnects
      } else error = m.error
    })
    const limitMs = options.durationS * 1000 + 60_000
    const timer = setTimeout(() => child.kill("SIGKILL"), limitMs)
    child.on("exit", (code, signal) => {
      clearTimeout(timer)
      if (result === undefined && error === undefined) error = `child exited (${signal ?? `code ${code}`}) without a result`
      resolve({
        samples,
        ...(result === undefined ? {} : { result }),
        ...(reconnects === undefined ? {} : { reconnects }),
        ...(error === undefined ? {} : { error })
      })
    })
  })

const rule = defaultRule(options.durationS)
let failed = false
console.log(`# Soak: ${options.durationS} s per bridge, ${options.rate} calls/s + ${options.rate} events/s (× ${options.subscribers} subscribers)`)
console.log(
  `Plateau rule: every sample of the last half within ${rule.liveLimitPct} % + ${rule.liveSlackMb} MB of the sample at ${rule.baselineS} s ` +
    `in live memory (heap + external after a full GC), and within ${rule.rssLimitPct} % in RSS`
)
for (const bridge of bridges) {
  const id = `herald-${bridge}`
  const info = systemById(id)!
  const before = info.broker === undefined ? undefined : await probeBroker(info.broker.host, info.broker.port)
  if (info.broker !== undefined && before?.up !== true) {
    console.log(`\n## ${bridge}: skipped (${info.broker.name} does not accept connections on ${info.broker.host}:${info.broker.port})`)
    continue
  }
  console.error(`soak ${bridge}: ${options.durationS} s`)
  const { error, reconnects, result, samples } = await runChild(id)
  // NATS names itself in its greeting, and a restarted server has a new id
  const after = info.broker === undefined ? undefined : await probeBroker(info.broker.host, info.broker.port)
  const restarted = before?.id !== undefined && after?.id !== before.id
  console.log(`\n## ${bridge}\n`)
  console.log("| t (s) | RSS (MB) | heap after GC (MB) | external after GC (MB) | calls | events |")
  console.log("|---|---|---|---|---|---|")
  for (const s of samples) console.log(`| ${s.t} | ${s.rssMb} | ${s.heapMb ?? "?"} | ${s.externalMb ?? "?"} | ${s.calls} | ${s.events} |`)
  const v = plateau(samples, options.durationS, rule)
  const problems: Array<string> = []
  if (error !== undefined) problems.push(error)
  if (v === undefined) problems.push(`no sample at or after ${rule.baselineS} s`)
  else if (!v.pass) problems.push(v.reason!)
  if (result !== undefined) {
    if (result.callErrors + result.publishErrors + result.wrong > 0) {
      problems.push(`${result.callErrors} call errors, ${result.publishErrors} publish errors, ${result.wrong} wrong (first: ${result.firstError})`)
    }
    if (result.lost > 0) problems.push(`${result.lost} deliveries lost`)
    console.log(
      `\ncalls ${result.calls} ok (${result.callErrors} errors, ${result.wrong} wrong); events published ${result.published} ` +
        `(${result.publishErrors} errors), delivered ${result.delivered}, lost ${result.lost}; ticks over the in-flight cap ${result.skipped}`
    )
  }
  if (v !== undefined) {
    console.log(
      `RSS growth over the ${v.baseline.t} s sample: ${v.rssGrowthPct.toFixed(1)} % max; live memory after GC: ` +
        (v.liveGrowthMb === undefined ? "not sampled" : `${v.liveGrowthMb >= 0 ? "+" : ""}${v.liveGrowthMb.toFixed(1)} MB max`)
    )
  }
  if (restarted) console.log(`Note: ${info.broker!.name} restarted during the run (its server id changed); failures may come from that.`)
  if (reconnects !== undefined && reconnects > 0) {
    console.log(`Note: the bridges of the run reconnected ${reconnects} time(s) (a broker restart or a dropped connection).`)
  }
  console.log(problems.length === 0 ? `**${bridge}: PASS**` : `**${bridge}: FAIL** — ${problems.join("; ")}`)
  failed ||= problems.length > 0
}
process.exit(failed ? 1 : 0)
