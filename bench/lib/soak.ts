/**
 * The soak: a steady mixed load (calls and events at a fixed rate) on one Herald system for a long
 * time, with memory sampled at a fixed interval, and the rule that decides whether memory plateaued.
 *
 * Plateau rule: take the sample at `baselineS` (30 s by default; a quarter of the run when that is
 * shorter). Every sample in the last half of the run must stay
 * - live memory (the JS heap in use plus external buffers, right after a full GC): below the
 *   baseline's + `liveLimitPct` (10 %) + `liveSlackMb` (2 MB, the in-flight work of one instant) —
 *   this is the leak detector;
 * - resident memory (RSS): below the baseline's + `rssLimitPct` (25 %). RSS is bounded more loosely
 *   because it also holds what V8 and the allocator keep after a burst (freed, not given back to the
 *   system): a one-off step of tens of MB that is not live data (seen once in a 120 s NATS run:
 *   +43 MB RSS between two samples, live memory flat, then flat again).
 */
import type { CommandTarget, FanoutTarget, SystemModule } from "./types.ts"
import { describe, rssMb, sleep } from "./util.ts"

/** One memory sample, `t` seconds into the run. MB. */
export interface SoakSample {
  readonly t: number
  readonly rssMb: number
  /** JS heap in use right after a full GC; undefined without `--expose-gc`. */
  readonly heapMb: number | undefined
  /** Memory of buffers outside the JS heap (sockets, `Uint8Array`s) right after the same GC. */
  readonly externalMb: number | undefined
  readonly calls: number
  readonly events: number
}

export interface PlateauRule {
  readonly baselineS: number
  readonly liveLimitPct: number
  readonly liveSlackMb: number
  readonly rssLimitPct: number
}

/** The plateau rule of `npm run soak` for a run of `durationS` seconds. */
export const defaultRule = (durationS: number): PlateauRule => ({
  baselineS: Math.min(30, Math.max(durationS / 4, 1)),
  liveLimitPct: 10,
  liveSlackMb: 2,
  rssLimitPct: 25
})

export interface PlateauVerdict {
  readonly pass: boolean
  readonly baseline: SoakSample
  /** Largest RSS growth over the baseline among the samples of the last half, in %. */
  readonly rssGrowthPct: number
  /** Largest live-memory growth over the baseline among the samples of the last half, MB. */
  readonly liveGrowthMb: number | undefined
  readonly reason: string | undefined
}

const mb1 = (x: number) => Math.round(x * 10) / 10
/** Heap in use plus external memory, or undefined when the sample has no GC figures. */
export const liveMb = (s: SoakSample): number | undefined =>
  s.heapMb === undefined ? undefined : s.heapMb + (s.externalMb ?? 0)

/** Applies the plateau rule; undefined when there is no sample at or after the baseline. */
export const plateau = (samples: ReadonlyArray<SoakSample>, durationS: number, rule: PlateauRule): PlateauVerdict | undefined => {
  const baseline = samples.find((s) => s.t >= rule.baselineS)
  if (baseline === undefined) return undefined
  const lastHalf = samples.filter((s) => s.t >= durationS / 2 && s.t > baseline.t)
  const rssLimit = baseline.rssMb * (1 + rule.rssLimitPct / 100)
  const rssGrowthPct = Math.max(0, ...lastHalf.map((s) => ((s.rssMb - baseline.rssMb) / baseline.rssMb) * 100))
  const base = liveMb(baseline)
  const lives = lastHalf.map(liveMb).filter((m): m is number => m !== undefined)
  const liveLimit = base === undefined ? undefined : base * (1 + rule.liveLimitPct / 100) + rule.liveSlackMb
  const liveGrowthMb = base === undefined || lives.length === 0 ? undefined : Math.max(...lives) - base
  const reasons: Array<string> = []
  if (lastHalf.length === 0) reasons.push("no sample in the last half of the run after the baseline")
  const rssOver = lastHalf.find((s) => s.rssMb >= rssLimit)
  if (rssOver !== undefined) reasons.push(`RSS ${mb1(rssOver.rssMb)} MB at ${rssOver.t} s ≥ ${mb1(rssLimit)} MB`)
  const liveOver = liveLimit === undefined ? undefined : lastHalf.find((s) => (liveMb(s) ?? 0) >= liveLimit)
  if (liveOver !== undefined) {
    reasons.push(`live memory after GC ${mb1(liveMb(liveOver)!)} MB at ${liveOver.t} s ≥ ${mb1(liveLimit!)} MB`)
  }
  return { pass: reasons.length === 0, baseline, rssGrowthPct, liveGrowthMb, reason: reasons.length === 0 ? undefined : reasons.join("; ") }
}

/** Takes one sample: RSS first, then a full GC (with `--expose-gc`) and the heap and external memory after it. */
export const takeSample = (
  t: number,
  calls: number,
  events: number,
  gc: (() => void) | undefined = (globalThis as { readonly gc?: () => void }).gc
): SoakSample => {
  const rss = rssMb()
  gc?.()
  const m = process.memoryUsage()
  return {
    t,
    rssMb: rss,
    heapMb: gc === undefined ? undefined : mb1(m.heapUsed / 1048576),
    externalMb: gc === undefined ? undefined : mb1(m.external / 1048576),
    calls,
    events
  }
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
      const s = takeSample(t, calls, published)
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
