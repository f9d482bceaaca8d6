/**
 * Random routing scenarios for the conformance suite: subscriptions with random filters over every
 * filterable field, and events drawn from small overlapping pools so that matches are common.
 */
import { Schema } from "effect"
import * as fc from "fast-check"
import type * as Filter from "../Filter.ts"

/** The payload of every routing event. `run` isolates one property run from every other. */
export const Payload = Schema.Struct({
  id: Schema.Int,
  run: Schema.String,
  n: Schema.Int,
  s: Schema.String,
  nested: Schema.Struct({ k: Schema.String })
})

/** An event to publish: everything but `id` and `run`, which the suite adds. */
export interface RoutedEvent {
  readonly eventName: string
  readonly sender: string
  readonly tenantId: string | undefined
  readonly principalId: string | undefined
  readonly data: { readonly n: number; readonly s: string; readonly nested: { readonly k: string } }
}

/** Subscriptions (one filter each, each in its own service) and the events published to them. */
export interface Scenario {
  readonly filters: ReadonlyArray<Filter.Filter>
  readonly events: ReadonlyArray<RoutedEvent>
}

const eventNames = ["order.placed", "order.paid", "user.created", "ping"] as const
// tenants include characters that are special to brokers' subjects and topics
const tenants = ["t1", "t2", "acme.eu", "a*b > c/#+"] as const
const principals = ["alice", "bob"] as const
const senders = ["sa", "sb"] as const
const strings = ["a", "ab", "b", "ba"] as const

const maybe = <A>(arb: fc.Arbitrary<A>) => fc.option(arb, { nil: undefined, freq: 2 })
const pick = <A>(xs: ReadonlyArray<A>) => fc.constantFrom(...xs)

const eventNamePattern: fc.Arbitrary<Filter.Pattern> = fc.oneof(
  pick(eventNames),
  fc.subarray([...eventNames], { minLength: 1 }),
  fc.constant([{ prefix: "order." }]),
  fc.constant([{ "anything-but": "ping" }]),
  fc.constant([{ wildcard: "*.p*" }])
)
const tenantPattern: fc.Arbitrary<Filter.Pattern> = fc.oneof(
  pick(tenants),
  fc.subarray([...tenants], { minLength: 1 }),
  fc.constant([{ exists: false }]),
  fc.constant([{ exists: true }]),
  fc.constant([{ "anything-but": "t1" }]),
  fc.constant([{ prefix: "a" }])
)
const principalPattern: fc.Arbitrary<Filter.Pattern> = fc.oneof(
  pick(principals),
  fc.constant([{ "equals-ignore-case": "ALICE" }]),
  fc.constant([{ exists: false }])
)
const dataPattern: fc.Arbitrary<Filter.DataPattern> = fc.record({
  n: maybe(fc.oneof(
    fc.integer({ min: 0, max: 4 }),
    fc.integer({ min: 0, max: 4 }).map((k): Filter.Pattern => [{ numeric: [">=", k] }]),
    fc.constant<Filter.Pattern>([{ numeric: [">", 0, "<=", 2] }])
  )),
  s: maybe(fc.oneof(
    pick(strings),
    fc.constant<Filter.Pattern>([{ prefix: "a" }]),
    fc.constant<Filter.Pattern>([{ suffix: "b" }]),
    fc.constant<Filter.Pattern>([{ wildcard: "*a" }])
  )),
  nested: maybe(fc.record({ k: pick(strings) }))
}, { requiredKeys: [] }).map((d) => Object.fromEntries(Object.entries(d).filter(([, v]) => v !== undefined)) as Filter.DataPattern)

const leaf: fc.Arbitrary<Filter.Filter> = fc.record({
  eventName: maybe(eventNamePattern),
  tenantId: maybe(tenantPattern),
  principalId: maybe(principalPattern),
  sender: maybe(fc.record({ service: pick(senders) })),
  data: maybe(dataPattern)
}, { requiredKeys: [] }).map((f) => Object.fromEntries(Object.entries(f).filter(([, v]) => v !== undefined)) as Filter.Filter)

const filter: fc.Arbitrary<Filter.Filter> = fc.oneof(
  { weight: 4, arbitrary: leaf },
  { weight: 1, arbitrary: fc.tuple(leaf, leaf, leaf).map(([top, a, b]): Filter.Filter => ({ ...top, $or: [a, b] })) }
)

const event: fc.Arbitrary<RoutedEvent> = fc.record({
  eventName: pick(eventNames),
  sender: pick(senders),
  tenantId: maybe(pick(tenants)),
  principalId: maybe(pick(principals)),
  data: fc.record({ n: fc.integer({ min: 0, max: 4 }), s: pick(strings), nested: fc.record({ k: pick(strings) }) })
})

/** A random routing scenario: 1–4 subscriptions, 1–10 events. */
export const scenario: fc.Arbitrary<Scenario> = fc.record({
  filters: fc.array(filter, { minLength: 1, maxLength: 4 }),
  events: fc.array(event, { minLength: 1, maxLength: 10 })
})

/** Confines a filter to the events of one run (`data.run`), keeping everything else it says. */
export const scope = (f: Filter.Filter, run: string): Filter.Filter => ({
  ...f,
  data: { ...(f.data ?? {}), run }
})
