/**
 * The short soak of `npm test`: 10 s of mixed load on the memory bridge (the long one is
 * `npm run soak`, on every bridge), checking that nothing accumulates: no pending request is left,
 * every call and every event arrived, and live memory (heap + external) after a full GC stays flat. Plus the plateau rule
 * of the soak tool, as properties.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, FiberSet, Layer, Schedule } from "effect"
import * as fc from "fast-check"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { defaultRule, liveMb, plateau, type PlateauRule, type SoakSample, takeSample } from "../bench/lib/soak.ts"
import { Bridge, Client, Event, MemoryBridge, Service } from "../src/index.ts"
import { outcomeOf } from "./bridges/support.ts"
import { Added, Calculator, CalculatorLive, subscriptionOf } from "./fixtures.ts"

/** V8's full garbage collection, made callable in this process. */
const gc = (): (() => void) => {
  setFlagsFromString("--expose-gc")
  return runInNewContext("gc") as () => void
}

describe("soak (short)", () => {
  it.live(
    "10 s of calls and events on the memory bridge: nothing pending, nothing lost, live memory after GC flat",
    () =>
      Effect.gen(function*() {
        const Listeners = [0, 1].map((k) => Service.make(`listener-${k}`, "1", { subscriptions: [subscriptionOf("on-added")] }))
        let delivered = 0
        const listen = (service: (typeof Listeners)[number]) =>
          Service.toLayer(service, { "on-added": () => Effect.sync(() => void delivered++) })
        const listening = Layer.mergeAll(listen(Listeners[0]!), listen(Listeners[1]!))
        yield* Effect.gen(function*() {
          const calc = yield* Client.make(Calculator)
          const added = Event.make("added", Added)
          let ok = 0
          let sums = 0
          let failed = 0
          let published = 0
          const inflight = yield* FiberSet.make()
          // every 5 ms: 2 calls (one of them a declared error) and 1 event; a successful `add` also emits `added`
          const tick = (n: number) =>
            Effect.all([
              FiberSet.run(inflight, Effect.map(Effect.exit(calc.add({ a: n % 500, b: 1 })), (e) => outcomeOf(e) === "ok" ? (ok++, sums++) : failed++)),
              FiberSet.run(inflight, Effect.map(Effect.exit(calc.add({ a: 1000, b: 1 })), (e) => outcomeOf(e) === "Overflow" ? ok++ : failed++)),
              FiberSet.run(inflight, Effect.andThen(Event.publish(added, { sum: n }), Effect.sync(() => void published++)))
            ])
          let n = 0
          const runFor = (ms: number) =>
            Effect.gen(function*() {
              const end = (yield* Clock.currentTimeMillis) + ms
              while ((yield* Clock.currentTimeMillis) < end) {
                yield* tick(n++)
                yield* Effect.sleep("5 millis")
              }
              yield* FiberSet.awaitEmpty(inflight)
            })
          yield* runFor(3_000) // warm-up: JIT, pools, caches
          const collect = gc()
          const samples: Array<SoakSample> = [takeSample(3, ok, published, collect)]
          for (const t of [5, 7, 9, 10]) {
            yield* runFor(t === 10 ? 1_000 : 2_000)
            samples.push(takeSample(t, ok, published, collect))
          }
          const verdict = plateau(samples, 10, { ...defaultRule(10), baselineS: 3 })!
          console.log(
            `soak memory (10 s): ${ok} calls, ${published + sums} events × 2 subscribers; live memory after GC ` +
              samples.map((s) => liveMb(s)!.toFixed(1)).join(" → ") + " MB; RSS " + samples.map((s) => s.rssMb.toFixed(0)).join(" → ") + " MB"
          )
          assert.strictEqual(failed, 0)
          assert.isAbove(ok, 1000)
          assert.strictEqual(yield* Bridge.Bridge.use((b) => b.pendingRequests), 0, "pending requests left")
          yield* Effect.repeat(Effect.sync(() => delivered), { schedule: Schedule.spaced("20 millis"), until: (d) => d >= (published + sums) * 2 })
            .pipe(Effect.timeout("5 seconds"))
          assert.strictEqual(delivered, (published + sums) * 2)
          assert.isDefined(verdict.liveGrowthMb)
          assert.isTrue(verdict.pass, verdict.reason)
        }).pipe(Effect.provide(Layer.mergeAll(CalculatorLive(), listening).pipe(Layer.provideMerge(MemoryBridge.layer))))
      }),
    30_000
  )
})

describe("soak plateau rule", () => {
  const rule: PlateauRule = { baselineS: 30, liveLimitPct: 10, liveSlackMb: 2, rssLimitPct: 25 }
  const series = (rss: ReadonlyArray<number>, heap: ReadonlyArray<number>): Array<SoakSample> =>
    rss.map((r, i) => ({ t: (i + 1) * 10, rssMb: r, heapMb: heap[i], externalMb: 0, calls: 0, events: 0 }))
  const mb = fc.double({ min: 50, max: 500, noNaN: true })

  it("a flat series passes; whatever happens before the baseline does not matter", () => {
    const beforeBaseline = fc.array(fc.double({ min: 1, max: 1000, noNaN: true }), { minLength: 2, maxLength: 2 })
    fc.assert(fc.property(mb, mb, beforeBaseline, (rss, heap, early) => {
      const flat = series([...early, ...Array<number>(10).fill(rss)], [...early, ...Array<number>(10).fill(heap)])
      assert.isTrue(plateau(flat, 120, rule)!.pass)
    }))
  })

  it("one sample of the last half at or above the limit fails, in RSS or in live memory", () => {
    const lastHalf = fc.integer({ min: 6, max: 11 }) // sample index: 70 s … 120 s
    const excess = fc.double({ min: 0, max: 2, noNaN: true })
    fc.assert(fc.property(mb, mb, lastHalf, excess, fc.boolean(), (rss, heap, at, over, inHeap) => {
      const r = Array<number>(12).fill(rss)
      const h = Array<number>(12).fill(heap)
      if (inHeap) h[at] = heap * 1.1 + 2 + over
      else r[at] = rss * 1.25 * (1 + over / 10)
      const v = plateau(series(r, h), 120, rule)!
      assert.isFalse(v.pass)
      assert.match(v.reason!, inHeap ? /live memory after GC/ : /RSS/)
    }))
  })

  it("growth within the limit passes; the default rule takes the sample at 30 s, or a quarter of a short run", () => {
    fc.assert(fc.property(mb, fc.array(fc.double({ min: 0, max: 0.249, noNaN: true }), { minLength: 12, maxLength: 12 }), (base, growth) => {
      const r = growth.map((g, i) => (i < 2 ? base * 3 : base * (1 + g)))
      r[2] = base
      assert.isTrue(plateau(series(r, r.map(() => 40)), 120, rule)!.pass)
    }))
    assert.strictEqual(defaultRule(120).baselineS, 30)
    assert.strictEqual(defaultRule(20).baselineS, 5)
    assert.isUndefined(plateau(series([100], [10]), 120, rule))
  })
})
