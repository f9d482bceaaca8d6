/**
 * An ordered, in-memory trace of what the example services did, for printing and for tests.
 *
 * Each entry is stamped with the tenant and correlation id of the message being handled, read from
 * `MessageContext`, so the printed trace shows those ids flowing across services and events.
 * Subscriptions run concurrently: `awaitUntil` waits for the entries a scenario expects.
 */
import { Context, Effect, Layer, Stream, SubscriptionRef } from "effect"
import { MessageContext } from "../src/index.ts"

/** What an entry records. */
export type Kind = "request" | "command" | "event" | "timeout" | "dead-letter" | "outcome"

/** One thing that happened, in order. */
export interface Entry {
  readonly seq: number
  /** The order it is about: the trace is grouped by it. */
  readonly orderId: string
  /** Who did it: `client`, `service.command` or `service.subscription`. */
  readonly actor: string
  readonly kind: Kind
  readonly text: string
  /** From the current `MessageContext`. */
  readonly tenantId: string | undefined
  readonly correlationId: string | undefined
  /** Dead letters only: handler attempts made. */
  readonly attempts?: number | undefined
}

/** The fields a caller gives; the rest comes from the context. */
export type Note = Pick<Entry, "orderId" | "actor" | "kind" | "text" | "attempts">

export class Trace extends Context.Service<Trace, {
  /** Appends an entry stamped with the current message context. */
  readonly record: (note: Note) => Effect.Effect<void>
  readonly entries: Effect.Effect<ReadonlyArray<Entry>>
  /** Waits until the entries satisfy `done`, and returns them. */
  readonly awaitUntil: (done: (entries: ReadonlyArray<Entry>) => boolean) => Effect.Effect<ReadonlyArray<Entry>>
}>()("examples/Trace") {
  static readonly layer = Layer.effect(
    Trace,
    Effect.gen(function*() {
      const ref = yield* SubscriptionRef.make<ReadonlyArray<Entry>>([])
      return Trace.of({
        record: (note) =>
          Effect.gen(function*() {
            const { correlationId, tenantId } = yield* MessageContext
            yield* SubscriptionRef.update(ref, (all) => [...all, { ...note, seq: all.length, tenantId, correlationId }])
          }),
        entries: SubscriptionRef.get(ref),
        awaitUntil: (done) =>
          SubscriptionRef.changes(ref).pipe(
            Stream.filter(done),
            Stream.runHead,
            Effect.flatMap(() => SubscriptionRef.get(ref))
          )
      })
    })
  )
}

/**
 * Renders the trace grouped by order (in order of first appearance): a header with the tenant and
 * the client's outcome, then one line per service entry. Correlation ids are shown as short labels
 * (`#1`, `#2`, …, in order of first appearance).
 */
export const render = (entries: ReadonlyArray<Entry>): ReadonlyArray<string> => {
  const labels = new Map<string, string>()
  const label = (id: string | undefined) => {
    if (id === undefined) return "--"
    if (!labels.has(id)) labels.set(id, `#${labels.size + 1}`)
    return labels.get(id)!
  }
  const orders = [...new Set(entries.map((e) => e.orderId))]
  return orders.flatMap((orderId) => {
    const group = entries.filter((e) => e.orderId === orderId)
    const outcome = group.find((e) => e.actor === "client")
    const header = `${orderId} (tenant ${group[0]?.tenantId ?? "-"}): ${outcome?.text ?? "no outcome"}`
    const lines = group
      .filter((e) => e !== outcome)
      .map((e) => `   ${label(e.correlationId)}  ${e.actor.padEnd(28)} ${e.text}`)
    return [header, ...lines]
  })
}
