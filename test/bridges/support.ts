/** Helpers shared by the broker-specific bridge tests. */
import { Cause, Effect, Exit, Option, Queue, Schedule } from "effect"
import { Subscription } from "../../src/index.ts"
import { Added } from "../fixtures.ts"

/** Takes `n` items from a queue, failing the test after `ms`. */
export const takeN = <A>(queue: Queue.Queue<A>, n: number, ms = 10_000) =>
  Effect.suspend(() => {
    const out: Array<A> = []
    return Effect.whileLoop({
      while: () => out.length < n,
      body: () => Queue.take(queue),
      step: (a) => void out.push(a)
    }).pipe(
      Effect.as(out),
      Effect.timeoutOrElse({ duration: ms, orElse: () => Effect.die(new Error(`got ${out.length} of ${n} items in ${ms} ms`)) })
    )
  })

/** Polls `check` until it returns true, failing the test after `ms`. */
export const eventually = <E, R>(what: string, check: Effect.Effect<boolean, E, R>, ms = 10_000) =>
  check.pipe(
    Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (ok) => ok }),
    Effect.timeoutOrElse({ duration: ms, orElse: () => Effect.die(new Error(`${what}: not true within ${ms} ms`)) }),
    Effect.asVoid
  )

/** `ok`, the tag of the typed error a call failed with, or `defect`. */
export const outcomeOf = (exit: Exit.Exit<unknown, { readonly _tag: string }>): string =>
  Exit.isSuccess(exit)
    ? "ok"
    : Option.match(Cause.findErrorOption(exit.cause), { onNone: () => "defect", onSome: (e) => e._tag })

/** A shared subscription to one event name with the `Added` payload. */
export const eventSub = (
  name: string,
  eventName: string,
  options: Partial<Subscription.SubscriptionOptions<typeof Added>> = {}
) => Subscription.make(name, { filter: { eventName }, payload: Added, delivery: "shared", ...options })

/** A CloudEvents command or event written by hand, as each bridge's wire document describes it. */
export const handWritten = (fields: Record<string, unknown>): string =>
  JSON.stringify({
    specversion: "1.0",
    id: crypto.randomUUID(),
    source: "raw-client",
    time: new Date().toISOString(),
    datacontenttype: "application/json",
    correlationid: "raw-correlation",
    senderservice: "raw",
    senderversion: "0",
    ...fields
  })
