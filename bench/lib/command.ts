/**
 * The "command" workload driver: C closed-loop workers, each `await add(a, b)`, check the sum,
 * record the latency, repeat. A probe call runs first; then a warm-up, then the measured window.
 * Only calls that complete inside the window count towards calls/s and the histogram; every call
 * (warm-up included) is checked, and errors, timeouts and wrong sums are counted.
 */
import { Histogram } from "./histogram.ts"
import type { CommandTarget } from "./types.ts"
import { heapAfterGcMb, newTally, noteError, RssSampler, sleep, type Tally, within, youngGenerationMb } from "./util.ts"

export interface DriveOptions {
  readonly concurrency: number
  readonly warmupMs: number
  readonly windowMs: number
  /** How long to wait after the window for in-flight operations before counting them as timeouts. */
  readonly graceMs: number
  readonly probeTimeoutMs: number
  /** Sample RSS every 250 ms (memory runs). */
  readonly sampleRss: boolean
}

export interface DriveResult {
  readonly ops: number
  readonly histogram: Histogram
  readonly tally: Tally
  readonly rssSamples: ReadonlyArray<readonly [number, number]>
  /** Heap after a full GC at the memory baseline and at the end of the window (memory runs only). */
  readonly heapAfterGc?: readonly [number | undefined, number | undefined]
  /** V8's young generation at the memory baseline and at the end of the window (memory runs only). */
  readonly youngGeneration?: readonly [number | undefined, number | undefined]
}

export const driveCommand = async (target: CommandTarget, o: DriveOptions): Promise<DriveResult> => {
  const probe = await within(o.probeTimeoutMs, "probe add(20, 22)", target.add(20, 22))
  if (probe?.sum !== 42) throw new Error(`probe add(20, 22) returned ${JSON.stringify(probe)}`)

  const histogram = new Histogram()
  const tally = newTally()
  const start = performance.now() + o.warmupMs
  const end = start + o.windowMs
  const rss = new RssSampler(start, 250, o.sampleRss)
  let ops = 0
  let inflight = 0

  const worker = async (w: number): Promise<void> => {
    const b = w * 7 + 1
    for (let a = 0; ; a++) {
      const t0 = performance.now()
      if (t0 >= end) return
      inflight++
      let sum: number
      try {
        sum = (await target.add(a, b)).sum
      } catch (e) {
        inflight--
        noteError(tally, e)
        continue
      }
      inflight--
      const t1 = performance.now()
      if (sum !== a + b) {
        tally.wrong++
        tally.firstProblem ??= `add(${a}, ${b}) returned ${sum}`
      } else if (t1 >= start && t1 < end) {
        ops++
        histogram.record(t1 - t0)
      }
      rss.tick(t1)
    }
  }

  const workers = Promise.all(Array.from({ length: o.concurrency }, (_, w) => worker(w)))
  const settled = await Promise.race([workers.then(() => true), sleep(end - performance.now() + o.graceMs).then(() => false)])
  if (!settled && inflight > 0) {
    tally.timeouts += inflight
    tally.firstProblem ??= `${inflight} calls still pending ${o.graceMs} ms after the window`
  }
  if (!o.sampleRss) return { ops, histogram, tally, rssSamples: rss.samples }
  const youngGeneration = [rss.youngAtBaseline, youngGenerationMb()] as const
  const heapAfterGc = [rss.heapAtBaseline, heapAfterGcMb()] as const
  return { ops, histogram, tally, rssSamples: rss.samples, heapAfterGc, youngGeneration }
}
