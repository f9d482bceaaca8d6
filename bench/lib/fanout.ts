/**
 * The "fanout" workload driver: one publisher emits `added` `{ sum: seq }` with seq = 1, 2, …,
 * keeping at most W events outstanding (published but not yet received by every subscriber).
 * Each delivery is matched to its publish time (all roles share this process), so the latency is
 * publish-to-handler. Deliveries of an event a subscriber already had are duplicates; sums never
 * published are wrong; deliveries still missing once the window closed and a grace period passed
 * are lost. A probe event (seq 0) must reach every subscriber before the warm-up starts.
 */
import type { DriveOptions, DriveResult } from "./command.ts"
import { Histogram } from "./histogram.ts"
import type { Deliver, FanoutTarget } from "./types.ts"
import { newTally, noteError, sleep } from "./util.ts"

interface Outstanding {
  readonly sentAt: number
  mask: number
}

const popcount = (n: number): number => {
  let c = 0
  for (let m = n; m !== 0; m &= m - 1) c++
  return c
}

/** `setup` receives the delivery callback the subscribers' handlers must call. */
export const driveFanout = async (
  setup: (deliver: Deliver) => Promise<FanoutTarget>,
  subscribers: number,
  o: DriveOptions
): Promise<DriveResult & { readonly close: () => Promise<void> }> => {
  const histogram = new Histogram()
  const tally = newTally()
  const full = (1 << subscribers) - 1
  const pending = new Map<number, Outstanding>()
  let lastSeq = -1
  let start = Infinity
  let end = Infinity
  let ops = 0
  let waiter: (() => void) | undefined
  const wake = () => {
    const w = waiter
    waiter = undefined
    w?.()
  }

  const deliver: Deliver = (k, sum) => {
    const now = performance.now()
    const entry = pending.get(sum)
    if (entry === undefined || !(k >= 0 && k < subscribers)) {
      if (Number.isInteger(sum) && sum >= 0 && sum <= lastSeq && k >= 0 && k < subscribers) tally.duplicates++
      else tally.wrong++
      tally.firstProblem ??= `subscriber ${k} received sum ${sum} (last published ${lastSeq})`
      return
    }
    const bit = 1 << k
    if ((entry.mask & bit) !== 0) {
      tally.duplicates++
      tally.firstProblem ??= `subscriber ${k} received event ${sum} twice`
      return
    }
    entry.mask |= bit
    if (now >= start && now < end) {
      ops++
      histogram.record(now - entry.sentAt)
    }
    if (entry.mask === full) {
      pending.delete(sum)
      wake()
    }
  }

  const target = await setup(deliver)
  const failed = (seq: number, e: unknown) => {
    noteError(tally, e)
    if (pending.delete(seq)) wake()
  }
  const publish = (seq: number) => {
    lastSeq = seq
    pending.set(seq, { sentAt: performance.now(), mask: 0 })
    try {
      const p = target.publish(seq)
      if (p !== undefined) p.then(undefined, (e: unknown) => failed(seq, e))
    } catch (e) {
      failed(seq, e)
    }
  }
  const drain = async (deadline: number) => {
    while (pending.size > 0 && performance.now() < deadline) await sleep(5)
  }

  publish(0)
  await drain(performance.now() + o.probeTimeoutMs)
  const probe = pending.get(0)
  if (probe !== undefined || tally.errors + tally.timeouts > 0) {
    const why = tally.firstProblem ?? `reached ${popcount(probe?.mask ?? 0)} of ${subscribers} subscribers within ${o.probeTimeoutMs} ms`
    await target.close().catch(() => undefined)
    throw new Error(`probe event: ${why}`)
  }

  start = performance.now() + o.warmupMs
  end = start + o.windowMs
  // wakes a publisher waiting for a slot when the window ends (timers may fire early: re-arm until then)
  let endTimer: ReturnType<typeof setTimeout> | undefined
  const atEnd = () => {
    const left = end - performance.now()
    if (left > 0) endTimer = setTimeout(atEnd, left + 1)
    else wake()
  }
  atEnd()
  for (let seq = 1; ; seq++) {
    if (performance.now() >= end) break
    while (pending.size >= o.concurrency && performance.now() < end) {
      await new Promise<void>((resolve) => (waiter = resolve))
    }
    if (performance.now() >= end) break
    publish(seq)
    // let deliveries and publish completions that are already queued as microtasks run
    if ((seq & 63) === 0) await null
  }
  clearTimeout(endTimer)

  await drain(performance.now() + o.graceMs)
  for (const entry of pending.values()) tally.lost += subscribers - popcount(entry.mask)
  if (tally.lost > 0) tally.firstProblem ??= `${pending.size} events not received by every subscriber ${o.graceMs} ms after the window`
  return { ops, histogram, tally, rssSamples: [], close: target.close }
}
