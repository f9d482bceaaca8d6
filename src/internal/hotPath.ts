/**
 * Effect combinators for the per-message path: the same behaviour as Effect's own, at a fraction
 * of their cost when nothing goes wrong.
 *
 * - `deadline`: `Effect.timeoutOrElse` with one child fiber and one timer. (`timeoutOrElse` races
 *   the effect against a sleeping fiber: two forked fibers, the race's bookkeeping and the sleep's
 *   own callback on every call; on the memory bridge that was about a sixth of a call's CPU time.)
 * - `retryAfterFailure`: `Effect.retry` whose schedule is set up only once the effect has failed.
 * - `makeInflight`: a service instance's running handler fibers (a `FiberSet` without hashing).
 * - `makeSlots`: a subscription's concurrency bound (`Semaphore.withPermits(1)` whose free case is
 *   a counter), which also counts the events waiting for a slot.
 */
import { Clock, Context, Effect, Fiber, type Schedule } from "effect"
import { BridgeError } from "../BridgeError.ts"

/** The built-in clock; under another one (the `TestClock`) the general path runs, so tests control time. */
export const nativeClock = Context.get(Context.empty(), Clock.Clock)

/** The longest delay `setTimeout` takes. */
export const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * Runs `self` for at most `ms` milliseconds of the fiber's clock. When it has not ended by then it
 * is interrupted, its finalizers run, and the result is `orElse()`. Interrupting the caller
 * interrupts `self` and waits for it.
 */
export const deadline = <A, E, R, B, E2, R2>(
  self: Effect.Effect<A, E, R>,
  ms: number,
  orElse: () => Effect.Effect<B, E2, R2>
): Effect.Effect<A | B, E | E2, R | R2> =>
  Effect.withFiber((parent) => {
    if (parent.getRef(Clock.Clock) !== nativeClock || !(ms > 0 && ms <= MAX_TIMER_MS)) {
      return Effect.timeoutOrElse(self, { duration: Math.max(0, ms), orElse })
    }
    const context = parent.context as Context.Context<R>
    return Effect.callback<A | B, E | E2, R2>((resume) => {
      // forked here, where the interruption of the caller is sure to reach it
      const child = Effect.runForkWith(context)(self)
      const ended = child.pollUnsafe()
      if (ended !== undefined) return resume(ended)
      const timer = setTimeout(() => {
        stopObserving()
        resume(Effect.andThen(Fiber.interrupt(child), orElse()))
      }, ms)
      const stopObserving = child.addObserver((exit) => {
        clearTimeout(timer)
        resume(exit)
      })
      return Effect.suspend(() => {
        clearTimeout(timer)
        stopObserving()
        return Fiber.interrupt(child)
      })
    })
  })

/**
 * Bounds one broker operation of the bridge named `bridge` by `ms`: past it the operation is
 * interrupted and fails with a `BridgeError` saying what timed out.
 */
export const within = (bridge: string, what: string, ms: number) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | BridgeError, R> =>
  deadline(effect, ms, () => Effect.fail(new BridgeError({ bridge, reason: `${what}: timed out after ${ms} ms` })))

/**
 * `Effect.retry(self, schedule)` — the same attempts, delays and result — that builds the schedule
 * only after a first failure (which the schedule then gets as its first input). On success it costs
 * one `catch`; `Effect.retry` sets up its schedule's state and metadata on every run.
 */
export const retryAfterFailure = <A, E, R, X, R2>(
  self: Effect.Effect<A, E, R>,
  schedule: Schedule.Schedule<X, NoInfer<E>, unknown, R2>
): Effect.Effect<A, E, R | R2> =>
  Effect.catch(self, (first: E) => {
    let replay = true
    const again = Effect.suspend((): Effect.Effect<A, E, R> => (replay ? (replay = false, Effect.fail(first)) : self))
    return Effect.retry(again, schedule) as Effect.Effect<A, E, R | R2>
  })

/** A fiber in an `Inflight` registry: a node of its intrusive list. */
interface Entry {
  readonly fiber: Fiber.Fiber<unknown, unknown>
  prev: Entry | undefined
  next: Entry | undefined
}

/**
 * The handler fibers of one service instance that are still running, for draining and stopping it:
 * what `FiberSet` does for this purpose, as an intrusive list (no hashing of the fiber, one node per
 * fiber; a `FiberSet` costs several times more per message).
 */
export interface Inflight {
  /** Registers a running fiber until it ends; interrupts it at once when the registry is closed. */
  readonly add: (fiber: Fiber.Fiber<unknown, unknown>) => void
  /** Waits until no registered fiber is running. */
  readonly awaitEmpty: Effect.Effect<void>
  /** Closes the registry, interrupts every registered fiber and waits for them to end. */
  readonly close: Effect.Effect<void>
}

export const makeInflight = (): Inflight => {
  let head: Entry | undefined
  let closed = false
  let onEmpty: Array<() => void> = []
  const remove = (e: Entry) => {
    if (e.prev !== undefined) e.prev.next = e.next
    else if (head === e) head = e.next
    if (e.next !== undefined) e.next.prev = e.prev
    if (head === undefined && onEmpty.length > 0) {
      const waiting = onEmpty
      onEmpty = []
      for (const wake of waiting) wake()
    }
  }
  const fibers = () => {
    const all: Array<Fiber.Fiber<unknown, unknown>> = []
    for (let e = head; e !== undefined; e = e.next) all.push(e.fiber)
    return all
  }
  return {
    add: (fiber) => {
      if (closed) return fiber.interruptUnsafe()
      const e: Entry = { fiber, prev: undefined, next: head }
      if (head !== undefined) head.prev = e
      head = e
      fiber.addObserver(() => remove(e))
    },
    awaitEmpty: Effect.callback<void>((resume) => {
      if (head === undefined) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      onEmpty.push(wake)
      return Effect.sync(() => {
        onEmpty = onEmpty.filter((w) => w !== wake)
      })
    }),
    close: Effect.suspend(() => {
      closed = true
      return Fiber.interruptAll(fibers())
    })
  }
}

/** A fiber waiting in `Slots`: `granted` once a slot was handed to it (it then owns the slot). */
interface Waiter {
  readonly resume: (effect: Effect.Effect<void>) => void
  granted: boolean
}

/**
 * A bound on how many effects run at once: what `Semaphore.withPermits(1)` does, with the free case
 * a counter (the semaphore takes its permit through an interruptible wait every time), and the
 * number of effects waiting for a slot readable at once.
 */
export interface Slots {
  /** Runs `self` once a slot is free (waiting, interruptibly, in arrival order), holding it until `self` ends. */
  readonly withSlot: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** How many effects wait for a slot right now. */
  readonly waiting: () => number
}

export const makeSlots = (size: number): Slots => {
  let free = size
  let queue: Array<Waiter> = []
  /** Frees a slot, handing it to the first waiter if there is one (resumed outside the releasing fiber). */
  const release = (): void => {
    const next = queue.shift()
    if (next === undefined) {
      free++
      return
    }
    next.granted = true
    queueMicrotask(() => next.resume(Effect.void))
  }
  const releasing = Effect.sync(release)
  const acquire = Effect.callback<void>((resume) => {
    const waiter: Waiter = { resume, granted: false }
    queue.push(waiter)
    // interrupted while waiting: leave the queue, or pass on the slot it was just handed
    return Effect.sync(() => {
      if (waiter.granted) release()
      else queue = queue.filter((w) => w !== waiter)
    })
  })
  return {
    withSlot: <A, E, R>(self: Effect.Effect<A, E, R>) =>
      Effect.uninterruptibleMask((restore) => {
        if (free > 0) {
          free--
          return Effect.ensuring(restore(self), releasing)
        }
        return Effect.andThen(restore(acquire), Effect.ensuring(restore(self), releasing))
      }),
    waiting: () => queue.length
  }
}
