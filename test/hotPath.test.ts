import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Fiber, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { deadline, makeInflight, makeSlots, retryAfterFailure } from "../src/internal/hotPath.ts"

const late = () => Effect.succeed("late" as const)

describe("deadline", () => {
  it.live("returns what ends in time, synchronous or not, and fails as the effect fails", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* deadline(Effect.succeed(1), 1000, late), 1)
      assert.strictEqual(yield* deadline(Effect.as(Effect.sleep("5 millis"), 2), 1000, late), 2)
      const failed = yield* Effect.exit(deadline(Effect.fail("boom"), 1000, late))
      assert.deepStrictEqual(failed, Exit.fail("boom"))
      const failedLater = yield* Effect.exit(deadline(Effect.andThen(Effect.sleep("5 millis"), Effect.fail("boom")), 1000, late))
      assert.deepStrictEqual(failedLater, Exit.fail("boom"))
    }))

  it.live("at the deadline interrupts the effect, runs its finalizers, then gives orElse", () =>
    Effect.gen(function*() {
      const events: Array<string> = []
      const started = Date.now()
      const result = yield* deadline(
        Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => events.push("finalized")))),
        30,
        () => Effect.sync(() => (events.push("orElse"), "late" as const))
      )
      assert.strictEqual(result, "late")
      assert.deepStrictEqual(events, ["finalized", "orElse"])
      assert.isAtLeast(Date.now() - started, 25)
    }))

  it.live("an effect ending in time is never interrupted and its timer does not fire later", () =>
    Effect.gen(function*() {
      let interrupted = 0
      let fallbacks = 0
      for (let i = 0; i < 200; i++) {
        yield* deadline(
          Effect.sleep("1 millis").pipe(Effect.onInterrupt(() => Effect.sync(() => interrupted++))),
          40,
          () => Effect.sync(() => fallbacks++)
        )
      }
      yield* Effect.sleep("80 millis")
      assert.strictEqual(interrupted, 0)
      assert.strictEqual(fallbacks, 0)
    }))

  it.live("interrupting the caller interrupts the effect and waits for its finalizers", () =>
    Effect.gen(function*() {
      const inside = yield* Deferred.make<void>()
      let finalized = false
      const fiber = yield* Effect.forkChild(deadline(
        Effect.andThen(Deferred.succeed(inside, undefined), Effect.never).pipe(
          Effect.onInterrupt(() => Effect.andThen(Effect.sleep("10 millis"), Effect.sync(() => (finalized = true))))
        ),
        10_000,
        late
      ))
      yield* Deferred.await(inside)
      yield* Fiber.interrupt(fiber)
      assert.isTrue(finalized)
    }))

  it.live("the effect sees the caller's services", () =>
    Effect.gen(function*() {
      const seen = yield* deadline(Effect.map(Effect.context<never>(), (ctx) => ctx), 1000, late)
      assert.strictEqual(seen, yield* Effect.context<never>())
    }))

  it.effect("follows the fiber's clock: under the TestClock only adjusting time reaches the deadline", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(deadline(Effect.never, 1000, late))
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(fiber), "late")
    }))
})

describe("retryAfterFailure", () => {
  /** Runs an effect failing its first `failures` runs with the given retry, under the TestClock: what each run saw and how it ended. */
  const trace = (
    retry: typeof Effect.retry | typeof retryAfterFailure,
    failures: number,
    schedule: Schedule.Schedule<unknown, string>
  ) =>
    Effect.gen(function*() {
      const runs: Array<number> = [] // when each run started, in TestClock milliseconds
      let n = 0
      const start = yield* Clock.currentTimeMillis
      const subject = Effect.flatMap(Clock.currentTimeMillis, (now) => {
        runs.push(now - start)
        return n++ < failures ? Effect.fail(`failure ${n}`) : Effect.succeed(`ok after ${n}`)
      })
      const fiber = yield* Effect.forkChild(Effect.exit((retry as typeof retryAfterFailure)(subject, schedule)))
      for (let i = 0; i < 20; i++) yield* TestClock.adjust("50 millis")
      const exit = yield* Fiber.join(fiber)
      return { runs, exit }
    })

  it.effect("the same runs and result as Effect.retry, for 0 to 6 failures and every policy kind (all combinations)", () =>
    Effect.gen(function*() {
      for (const kind of ["recurs", "spaced", "exponential", "while"] as const) {
        for (let times = 0; times <= 4; times++) {
          const schedule: Schedule.Schedule<unknown, string> = kind === "recurs"
            ? Schedule.recurs(times)
            : kind === "spaced"
            ? Schedule.spaced("30 millis").pipe(Schedule.upTo({ times }))
            : kind === "exponential"
            ? Schedule.exponential("10 millis").pipe(Schedule.upTo({ times }))
            : Schedule.recurs(times).pipe(Schedule.while(({ input }) => input !== "failure 2"))
          for (let failures = 0; failures <= 6; failures++) {
            const expected = yield* trace(Effect.retry, failures, schedule)
            const actual = yield* trace(retryAfterFailure, failures, schedule)
            assert.deepStrictEqual(actual, expected, `${kind} ${times} with ${failures} failures`)
          }
        }
      }
    }))

  it.effect("waits the schedule's delay before the second run, not after it", () =>
    Effect.gen(function*() {
      let runs = 0
      const fiber = yield* Effect.forkChild(
        retryAfterFailure(Effect.suspend(() => (++runs === 1 ? Effect.fail("no") : Effect.void)), Schedule.spaced("1 second"))
      )
      yield* TestClock.adjust("999 millis")
      assert.strictEqual(runs, 1)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(fiber)
      assert.strictEqual(runs, 2)
    }))
})

describe("makeInflight", () => {
  /** Forks `effect` as a fiber of its own (as a bridge runs a handler) registered in `inflight`. */
  const started = (inflight: ReturnType<typeof makeInflight>, effect: Effect.Effect<unknown>) =>
    Effect.runFork(Effect.withFiber((fiber) => (inflight.add(fiber), effect)))

  it.live("awaitEmpty waits for every registered fiber, in any order of ending, and is immediate when none runs", () =>
    Effect.gen(function*() {
      const inflight = makeInflight()
      yield* inflight.awaitEmpty
      const gates = [yield* Deferred.make<void>(), yield* Deferred.make<void>(), yield* Deferred.make<void>()]
      const fibers = gates.map((gate) => started(inflight, Deferred.await(gate)))
      const waiter = yield* Effect.forkChild(inflight.awaitEmpty)
      for (const i of [1, 2]) {
        yield* Deferred.succeed(gates[i]!, undefined)
        yield* Fiber.await(fibers[i]!)
        yield* Effect.yieldNow
        assert.isUndefined(waiter.pollUnsafe(), `still one running after ending fiber ${i}`)
      }
      yield* Deferred.succeed(gates[0]!, undefined)
      yield* Fiber.join(waiter)
      // a fiber that ended at once never blocks it
      started(inflight, Effect.void)
      yield* inflight.awaitEmpty
    }))

  it.live("close interrupts the running fibers and waits for their finalizers; later ones are interrupted at once", () =>
    Effect.gen(function*() {
      const inflight = makeInflight()
      const finalized: Array<number> = []
      const fibers = [1, 2, 3].map((i) =>
        started(inflight, Effect.never.pipe(Effect.onInterrupt(() => Effect.andThen(Effect.sleep("5 millis"), Effect.sync(() => finalized.push(i))))))
      )
      yield* inflight.close
      assert.deepStrictEqual([...finalized].sort(), [1, 2, 3])
      for (const fiber of fibers) assert.isTrue(Exit.hasInterrupts(fiber.pollUnsafe()!))
      const late = started(inflight, Effect.never)
      yield* Effect.yieldNow
      assert.isTrue(Exit.hasInterrupts(late.pollUnsafe()!))
    }))
})

describe("makeSlots", () => {
  /** Whether `n` effects can hold a slot at once now (none waits): no slot was lost or duplicated. */
  const allFree = (slots: ReturnType<typeof makeSlots>, n: number) =>
    Effect.gen(function*() {
      let running = 0
      let most = 0
      const gate = yield* Deferred.make<void>()
      const fibers = yield* Effect.forEach(Array.from({ length: n + 1 }), () =>
        Effect.forkChild(slots.withSlot(Effect.suspend(() => {
          most = Math.max(most, ++running)
          return Effect.ensuring(Deferred.await(gate), Effect.sync(() => running--))
        }))))
      yield* Effect.yieldNow
      const waitingThen = slots.waiting()
      yield* Deferred.succeed(gate, undefined)
      yield* Effect.forEach(fibers, Fiber.join)
      return { most, waitingThen }
    })

  it.live("runs at most `size` at once, the others in arrival order as slots free up", () =>
    Effect.gen(function*() {
      const slots = makeSlots(2)
      const order: Array<number> = []
      const gates = yield* Effect.forEach([0, 1, 2, 3, 4], () => Deferred.make<void>())
      const fibers = yield* Effect.forEach([0, 1, 2, 3, 4], (i) =>
        Effect.forkChild(slots.withSlot(Effect.andThen(Effect.sync(() => order.push(i)), Deferred.await(gates[i]!)))))
      yield* Effect.yieldNow
      assert.deepStrictEqual(order, [0, 1])
      assert.strictEqual(slots.waiting(), 3)
      yield* Deferred.succeed(gates[1]!, undefined)
      yield* Fiber.join(fibers[1]!)
      yield* Effect.sleep("1 millis")
      assert.deepStrictEqual(order, [0, 1, 2])
      assert.strictEqual(slots.waiting(), 2)
      for (const g of gates) yield* Deferred.succeed(g, undefined)
      yield* Effect.forEach(fibers, Fiber.join)
      assert.deepStrictEqual(order, [0, 1, 2, 3, 4])
      assert.deepStrictEqual(yield* allFree(slots, 2), { most: 2, waitingThen: 1 })
    }))

  it.live("a slot is released when the effect fails, dies or is interrupted while running", () =>
    Effect.gen(function*() {
      const slots = makeSlots(1)
      assert.isTrue(Exit.isFailure(yield* Effect.exit(slots.withSlot(Effect.fail("boom")))))
      assert.isTrue(Exit.isFailure(yield* Effect.exit(slots.withSlot(Effect.die("defect")))))
      const running = yield* Effect.forkChild(slots.withSlot(Effect.never))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(running)
      assert.deepStrictEqual(yield* allFree(slots, 1), { most: 1, waitingThen: 1 })
    }))

  it.live("interrupted while waiting, or just after being handed a slot, nothing is lost or held", () =>
    Effect.gen(function*() {
      const slots = makeSlots(1)
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.forkChild(slots.withSlot(Deferred.await(gate)))
      yield* Effect.yieldNow
      // waits, then leaves the queue
      const leaver = yield* Effect.forkChild(slots.withSlot(Effect.void))
      yield* Effect.yieldNow
      assert.strictEqual(slots.waiting(), 1)
      yield* Fiber.interrupt(leaver)
      assert.strictEqual(slots.waiting(), 0)
      // handed the slot by the holder's release, interrupted before it resumes (the hand-over is deferred)
      let ran = false
      const handed = yield* Effect.forkChild(slots.withSlot(Effect.sync(() => (ran = true))))
      yield* Effect.yieldNow
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.interrupt(handed)
      assert.isFalse(ran)
      assert.deepStrictEqual(yield* allFree(slots, 1), { most: 1, waitingThen: 1 })
    }))
})
