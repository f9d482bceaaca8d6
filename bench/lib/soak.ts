/**
 * The soak: a steady mixed load (calls and events at a fixed rate) on one Herald system for a long
 * time, with memory sampled at a fixed interval, and the rule that decides whether memory plateaued.
 *
 * Plateau rule: take the sample at `baselineS` (30 s by default; a quarter of the run when that is
 * shorter). Every sample in the last half of the run must stay below the baseline plus `limitPct`
 * (10 %): resident memory (RSS) against the baseline RSS, and the heap in use after a full GC (the
 * live data) against the baseline heap plus `heapSlackMb` (2 MB, the in-flight work of one instant).
 */
import type { CommandTarget, FanoutTarget, SystemModule } from "./types.ts"
import { describe, heapAfterGcMb, rssMb, sleep } from "./util.ts"

/** One memory sample, `t` seconds into the run. MB. */
export interface SoakSample {
  readonly t: number
  readonly rssMb: number
  /** Heap in use right after a full GC; undefined without `--expose-gc`. */
  readonly heapMb: number | undefined
  readonly calls: number
  readonly events: number
}

export interface PlateauRule {
  readonly baselineS: number
  readonly limitPct: number
  readonly heapSlackMb: number
}

/** The plateau rule of `npm run soak` for a run of `durationS` seconds. */
export const defaultRule = (durationS: number): PlateauRule => ({
  baselineS: Math.min(30, Math.max(durationS / 4, 1)),
  limitPct: 10,
  heapSlackMb: 2
})

export interface PlateauVerdict {
  readonly pass: boolean
  readonly baseline: SoakSample
  /** Largest growth over the baseline among the samples of the last half, in %. */
  readonly rssGrowthPct: number
  readonly heapGrowthMb: number | undefined
  readonly reason: string | undefined
}

/** Applies the plateau rule; undefined when there is no sample at or after the baseline. */
export const plateau = (samples: ReadonlyArray<SoakSample>, durationS: number, rule: PlateauRule): PlateauVerdict | undefined => {
  const baseline = samples.find((s) => s.t >= rule.baselineS)
  if (baseline === undefined) return undefined
  const lastHalf = samples.filter((s) => s.t >= durationS / 2 && s.t > baseline.t)
  const rssLimit = baseline.rssMb * (1 + rule.limitPct / 100)
  const rssGrowthPct = Math.max(0, ...lastHalf.map((s) => ((s.rssMb - baseline.rssMb) / baseline.rssMb) * 100))
  const heaps = lastHalf.map((s) => s.heapMb).filter((h): h is number => h !== undefined)
  const heapLimit = baseline.heapMb === undefined ? undefined : baseline.heapMb * (1 + rule.limitPct / 100) + rule.heapSlackMb
  const heapGrowthMb = baseline.heapMb === undefined || heaps.length === 0 ? undefined : Math.max(...heaps) - baseline.heapMb
  const reasons: Array<string> = []
  if (lastHalf.length === 0) reasons.push("no sample in the last half of the run after the baseline")
  const rssOver = lastHalf.find((s) => s.rssMb >= rssLimit)
  if (rssOver !== undefined) reasons.push(`RSS ${rssOver.rssMb.toFixed(1)} MB at ${rssOver.t} s ≥ ${rssLimit.toFixed(1)} MB`)
  const heapOver = heapLimit === undefined ? undefined : lastHalf.find((s) => s.heapMb !== undefined && s.heapMb >= heapLimit)
  if (heapOver !== undefined) reasons.push(`heap after GC ${heapOver.heapMb!.toFixed(1)} MB at ${heapOver.t} s ≥ ${heapLimit!.toFixed(1)} MB`)
  return { pass: reasons.length === 0, baseline, rssGrowthPct, heapGrowthMb, reason: reasons.length === 0 ? undefined : reasons.join("; ") }
}

export interface SoakOptions {
  readonly durationS: number
  readonly intervalS: number
  /** Calls per second, and as many events per second. */
  readonly rate: number
  /** Subscribing services, each receiving every event. */
  readonly subscribers: number
  readonly timeoutMs: number
}

export interface SoakResult {
  readonly samples: ReadonlyArray<SoakSample>
  readonly calls: number
  readonly callErrors: number
  readonly wrong: number
  readonly published: number
  readonly publishErrors: number
  readonly delivered: number
  /** Deliveries missing after the grace: published × subscribers − delivered (non-durable events). */
  readonly lost: number
  /** Ticks that found the in-flight cap reached (the system did not keep up with the rate). */
  readonly skipped: number
  readonly firstError: string | undefined
}

/** In-flight calls (and events) beyond which a tick issues nothing: bounds memory when the system lags. */
const MAX_IN_FLIGHT = 512
const TICK_MS = 20

/** Runs the soak against a system: sets it up, drives the paced load, samples memory, closes it. */
export const runSoak = async (system: SystemModule, options: SoakOptions, onSample: (s: SoakSample) => void): Promise<SoakResult> => {
  let delivered = 0
  const setup = { timeoutMs: options.timeoutMs, runId: Math.random().toString(36).slice(2, 14) }
  let command: CommandTarget | undefined
  let fanout: FanoutTarget | undefined
  try {
    command = await system.command(setup)
    fanout = await system.fanout(() => void delivered++, options.subscribers, setup)
    const c = command
    const f = fanout
    let calls = 0, callErrors = 0, wrong = 0, published = 0, publishErrors = 0, skipped = 0, inFlight = 0
    let firstError: string | undefined
    const perTick = (options.rate * TICK_MS) / 1000
    let credit = 0
    let n = 0
    const samples: Array<SoakSample> = []
    const start = performance.now()
    let nextSample = 0
    const sample = (t: number) => {
      const s: SoakSample = { t, rssMb: rssMb(), heapMb: heapAfterGcMb(), calls, events: published }
      samples.push(s)
      onSample(s)
    }
    sample(0)
    nextSample = options.intervalS
    while (true) {
      const elapsed = (performance.now() - start) / 1000
      if (elapsed >= nextSample) {
        sample(Math.round(elapsed))
        nextSample += options.intervalS
      }
      if (elapsed >= options.durationS) break
      credit += perTick
      for (; credit >= 1; credit--) {
        if (inFlight >= MAX_IN_FLIGHT) {
          skipped++
          continue
        }
        const a = n++
        inFlight += 2
        c.add(a, 1).then(
          (r) => void (r.sum === a + 1 ? calls++ : wrong++),
          (e) => void (callErrors++, (firstError ??= `call: ${describe(e)}`))
        ).finally(() => inFlight--)
        Promise.resolve().then(() => f.publish(a)).then(
          () => void published++,
          (e) => void (publishErrors++, (firstError ??= `publish: ${describe(e)}`))
        ).finally(() => inFlight--)
      }
      await sleep(TICK_MS)
    }
    for (let i = 0; i < 100 && inFlight > 0; i++) await sleep(50)
    // non-durable deliveries still on their way
    for (let i = 0; i < 40 && delivered < published * options.subscribers; i++) await sleep(50)
    return {
      samples,
      calls,
      callErrors,
      wrong,
      published,
      publishErrors,
      delivered,
      lost: Math.max(0, published * options.subscribers - delivered),
      skipped,
      firstError
    }
  } finally {
    await Promise.allSettled([command?.close(), fanout?.close()])
  }
}
