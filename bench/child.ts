/**
 * One measurement in a fresh process: `node bench/child.ts '<ChildSpec JSON>'`.
 *
 * Loads the system module named in the spec, sets up the workload (every role of a broker system
 * opens its own connection), runs probe → warm-up → window with the workload's driver, and reports
 * one `Measurement` to the parent over IPC (or prints it as a JSON line when run by hand, e.g.
 * under `node --cpu-prof`). Then it closes the system, bounded, and exits.
 */
import { randomUUID } from "node:crypto"
import { driveCommand, type DriveOptions, type DriveResult } from "./lib/command.ts"
import { driveFanout } from "./lib/fanout.ts"
import { type Measurement, SUBSCRIBERS, type SystemModule, type Workload } from "./lib/types.ts"
import { describe, problems, rssMb, within } from "./lib/util.ts"
import { systemById } from "./systems/index.ts"

export interface ChildSpec {
  readonly system: string
  readonly workload: Workload
  readonly concurrency: number
  readonly round: number | "memory"
  readonly warmupMs: number
  readonly windowMs: number
  readonly sampleRss: boolean
}

/** Per-call timeout every caller applies. */
const CALL_TIMEOUT_MS = 5000
const SETUP_TIMEOUT_MS = 15_000
const CLOSE_TIMEOUT_MS = 3000

const spec = JSON.parse(process.argv[2] ?? "{}") as ChildSpec
const info = systemById(spec.system)
const options: DriveOptions = {
  concurrency: spec.concurrency,
  warmupMs: spec.warmupMs,
  windowMs: spec.windowMs,
  graceMs: CALL_TIMEOUT_MS + 1000,
  probeTimeoutMs: CALL_TIMEOUT_MS,
  sampleRss: spec.sampleRss
}
const setup = { timeoutMs: CALL_TIMEOUT_MS, runId: randomUUID().replaceAll("-", "").slice(0, 12) }

const measurement = (r: DriveResult | undefined, failure: string | undefined): Measurement => {
  const t = r?.tally
  const failed = failure ?? (r !== undefined && problems(r.tally) > 0 ? r.tally.firstProblem : undefined) ??
    (r !== undefined && r.ops === 0 ? "no operation completed in the window" : undefined)
  const ms = (x: number) => Number(x.toPrecision(4))
  return {
    system: spec.system,
    workload: spec.workload,
    concurrency: spec.concurrency,
    round: spec.round,
    ok: failed === undefined,
    ...(failed === undefined ? {} : { failure: failed }),
    window_s: spec.windowMs / 1000,
    ops_per_s: r === undefined ? 0 : Math.round(r.ops / (spec.windowMs / 1000)),
    ops: r?.ops ?? 0,
    p50_ms: ms(r?.histogram.percentile(0.5) ?? 0),
    p99_ms: ms(r?.histogram.percentile(0.99) ?? 0),
    max_ms: ms(r?.histogram.max ?? 0),
    errors: t?.errors ?? 0,
    timeouts: t?.timeouts ?? 0,
    wrong: t?.wrong ?? 0,
    lost: t?.lost ?? 0,
    duplicates: t?.duplicates ?? 0,
    rss_mb: rssMb(),
    ...(spec.sampleRss && r !== undefined ? { rss_samples: r.rssSamples } : {}),
    ...(r?.heapAfterGc === undefined ? {} : { heap_gc_baseline_mb: r.heapAfterGc[0], heap_gc_end_mb: r.heapAfterGc[1] }),
    ...(r?.youngGeneration === undefined ? {} : { young_gen_baseline_mb: r.youngGeneration[0], young_gen_end_mb: r.youngGeneration[1] })
  }
}

const report = (m: Measurement): Promise<void> =>
  new Promise((resolve) => {
    if (process.send === undefined) {
      process.stdout.write(`${JSON.stringify(m)}\n`)
      resolve()
    } else process.send(m, () => resolve())
  })

let close: () => Promise<void> = async () => {}
let result: Measurement
try {
  if (info === undefined) throw new Error(`unknown system ${spec.system}`)
  const { system } = (await import(new URL(`./systems/${info.file}`, import.meta.url).href)) as { system: SystemModule }
  if (spec.workload === "command") {
    const target = await within(SETUP_TIMEOUT_MS, "setup", system.command(setup))
    close = target.close
    result = measurement(await driveCommand(target, options), undefined)
  } else {
    const r = await driveFanout((deliver) => within(SETUP_TIMEOUT_MS, "setup", system.fanout(deliver, SUBSCRIBERS, setup)), SUBSCRIBERS, options)
    close = r.close
    result = measurement(r, undefined)
  }
} catch (e) {
  result = measurement(undefined, describe(e))
}
await report(result)
await within(CLOSE_TIMEOUT_MS, "close", close()).catch(() => undefined)
process.exit(0)
