/**
 * Reference matchers of each broker's wildcard syntax, written from the brokers' documentation, and
 * the arbitraries of the pre-filter properties, for tests that check what a pre-filter admits
 * without a broker.
 */
import * as fc from "fast-check"

/** NATS subject matching: `*` is one token, `>` one or more trailing tokens. */
export const natsMatches = (pattern: string, subject: string): boolean => {
  const p = pattern.split(".")
  const s = subject.split(".")
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i
    if (i >= s.length || (p[i] !== "*" && p[i] !== s[i])) return false
  }
  return p.length === s.length
}

/** MQTT topic matching: `+` is one level, `#` zero or more trailing levels. */
export const mqttMatches = (filter: string, topic: string): boolean => {
  const f = filter.split("/")
  const t = topic.split("/")
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true
    if (i >= t.length || (f[i] !== "+" && f[i] !== t[i])) return false
  }
  return f.length === t.length
}

/** AMQP topic-exchange matching: `*` is exactly one word, `#` zero or more words. */
export const amqpMatches = (pattern: string, key: string): boolean => {
  const p = pattern.split(".")
  const k = key.split(".")
  const go = (i: number, j: number): boolean => {
    if (i === p.length) return j === k.length
    if (p[i] === "#") return go(i + 1, j) || (j < k.length && go(i, j + 1))
    return j < k.length && (p[i] === "*" || p[i] === k[j]) && go(i + 1, j + 1)
  }
  return go(0, 0)
}

/** Any string, lone surrogates included: what a caller may put in a tenant id. */
export const anyString = fc.oneof(
  fc.string({ unit: "binary" }),
  fc.array(fc.integer({ min: 0, max: 0xffff })).map((codes) => String.fromCharCode(...codes)) // lone surrogates too
)

/** A valid event name of 1 to 3 dot-separated words. */
export const eventName = fc.array(fc.stringMatching(/^[a-z][a-z0-9-]{0,4}$/), { minLength: 1, maxLength: 3 })
  .map((xs) => xs.join("."))

/** Pre-filter hints of a subscription, and one event that they admit or not. */
export interface HintedEvent {
  readonly eventNames: Array<string> | undefined
  readonly tenantIds: Array<string> | undefined
  readonly name: string
  readonly tenantId: string | undefined
  /** Whether the hints admit the event. */
  readonly admitted: boolean
}

/**
 * Random hints and an event, often one the hints name; `tenants` are arbitrary strings plus a few
 * given ones (e.g. one holding the broker's separator).
 */
export const hintedEvent = (tenants: fc.Arbitrary<string>): fc.Arbitrary<HintedEvent> =>
  fc.tuple(
    fc.option(fc.array(eventName, { minLength: 1, maxLength: 4 }), { nil: undefined }),
    fc.option(fc.array(tenants, { minLength: 1, maxLength: 3 }), { nil: undefined }),
    eventName,
    fc.option(tenants, { nil: undefined }),
    fc.nat()
  ).map(([eventNames, tenantIds, otherName, otherTenant, pick]) => {
    const name = eventNames === undefined || pick % 3 === 0 ? otherName : eventNames[pick % eventNames.length]!
    const tenantId = tenantIds === undefined || pick % 5 === 0 ? otherTenant : tenantIds[pick % tenantIds.length]
    const admitted = (eventNames === undefined || eventNames.includes(name)) &&
      (tenantIds === undefined || (tenantId !== undefined && tenantIds.includes(tenantId)))
    return { eventNames, tenantIds, name, tenantId, admitted }
  })
