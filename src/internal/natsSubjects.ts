/**
 * The NATS wire mapping of Herald: subjects, queue groups, the tenant token, message ids, and the
 * stream and consumer configurations. Pure functions; `docs/nats-wire.md` describes the same
 * scheme for non-Herald clients, so the two must change together.
 */
import { AckPolicy, type ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType } from "@nats-io/jetstream"
import type { CommandAddress, EventRoute, SubscriptionSpec } from "../Bridge.ts"

/** One subject token as Herald writes it: letters, digits, `_` and `-`. */
const TOKEN = /^[A-Za-z0-9_-]+$/
/** A dot-separated run of tokens: a subject prefix or an event name. */
const TOKENS = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/

/** True when `s` is one token Herald can put in a subject. */
export const isToken = (s: string): boolean => TOKEN.test(s)

/** True when `s` is one or more tokens joined by `.` (a subject prefix, an event name). */
export const isTokens = (s: string): boolean => TOKENS.test(s)

import { encodeTenant } from "./tenantToken.ts"

export { decodeTenant, EMPTY_TENANT, encodeTenant, NO_TENANT } from "./tenantToken.ts"

/** `<prefix>.cmd.<service>.<version>.<command>`: where a command is served. */
export const commandSubject = (prefix: string, a: CommandAddress): string =>
  `${prefix}.cmd.${a.service}.${a.version}.${a.command}`

/** The queue group of a command's competing servers: `<service>.<version>`. */
export const commandQueue = (a: CommandAddress): string => `${a.service}.${a.version}`

/** True when every token of a command address can go in a subject. */
export const isValidAddress = (a: CommandAddress): boolean =>
  isToken(a.service) && isToken(a.version) && isToken(a.command)

/** `<prefix>.inbox.<bridgeId>`: the reply inbox of one bridge; each request replies to `<inbox>.<n>`. */
export const inboxOf = (prefix: string, bridgeId: string): string => `${prefix}.inbox.${bridgeId}`

/**
 * `<prefix>.evt.<tenant-token>.<senderService>.<eventName>`, or `undefined` when the sender or the
 * event name cannot go in a subject. The event name keeps its dots: it is the last 1..n tokens.
 */
export const eventSubject = (prefix: string, route: EventRoute): string | undefined =>
  isToken(route.senderService) && isTokens(route.eventName)
    ? `${prefix}.evt.${encodeTenant(route.tenantId)}.${route.senderService}.${route.eventName}`
    : undefined

/** `<prefix>.evt.>`: the subjects of the event stream. */
export const eventWildcard = (prefix: string): string => `${prefix}.evt.>`

/**
 * The broker-side pre-filter of a subscription: one subject per (tenant, event name) pair, with `*`
 * for any tenant and `*.>` (any sender, any name) for any event name. Always a superset of the
 * exact filter. Names that cannot be subjects are dropped: no event can carry them (publishing
 * rejects them), so the result may be empty.
 */
export const filterSubjects = (
  prefix: string,
  spec: Pick<SubscriptionSpec, "eventNames" | "tenantIds">
): ReadonlyArray<string> => {
  const tenants = spec.tenantIds === undefined ? ["*"] : spec.tenantIds.map(encodeTenant)
  const names = spec.eventNames === undefined ? [">"] : spec.eventNames.filter(isTokens)
  const out = new Set<string>()
  for (const tenant of tenants) {
    for (const name of names) out.add(`${prefix}.evt.${tenant}.*.${name}`)
  }
  return [...out]
}

/**
 * One subject covering all of `subjects` (for servers without multi-filter consumers): equal tokens
 * are kept, differing ones become `*`, and when lengths differ (or a `>` is involved) everything
 * from the shortest subject's last token on becomes `>`.
 */
export const coveringSubject = (subjects: ReadonlyArray<string>): string => {
  const split = subjects.map((s) => s.split("."))
  const lengths = split.map((t) => t.length)
  const min = Math.min(...lengths)
  const ragged = lengths.some((n) => n !== min) || split.some((t) => t[t.length - 1] === ">")
  const fixed = ragged ? min - 1 : min
  const out: Array<string> = []
  for (let i = 0; i < fixed; i++) {
    const first = split[0]![i]!
    out.push(split.every((t) => t[i] === first) ? first : "*")
  }
  if (ragged) out.push(">")
  return out.join(".")
}

/** The default stream name of a prefix: upper-cased, `.` as `_`, then `_EVENTS` (`herald` → `HERALD_EVENTS`). */
export const streamNameOf = (prefix: string): string => `${prefix.toUpperCase().replaceAll(".", "_")}_EVENTS`

/** A consumer name from free text: characters other than letters, digits, `_` and `-` become `-`. */
const sanitise = (s: string): string => s.replace(/[^A-Za-z0-9_-]/g, "-")

/**
 * The durable consumer of a subscription: `<service>_<version>_<subscription>` for `shared`
 * delivery, with `_<instance>` appended for `broadcast`.
 */
export const consumerName = (
  spec: Pick<SubscriptionSpec, "service" | "version" | "subscription" | "delivery" | "instance">
): string => {
  const base = `${sanitise(spec.service)}_${sanitise(spec.version)}_${sanitise(spec.subscription)}`
  return spec.delivery === "shared" ? base : `${base}_${sanitise(spec.instance)}`
}

/** The queue group of a non-durable `shared` subscription: `<service>.<version>.<subscription>`. */
export const eventQueue = (spec: Pick<SubscriptionSpec, "service" | "version" | "subscription">): string =>
  `${spec.service}.${spec.version}.${spec.subscription}`

/** True for a server version of at least 2.10, which has multi-filter consumers (`filter_subjects`). */
export const supportsFilterSubjects = (version: string | undefined): boolean => {
  const [major = 0, minor = 0] = (version ?? "").split(".").map((n) => parseInt(n, 10) || 0)
  return major > 2 || (major === 2 && minor >= 10)
}

const nanos = (ms: number): number => Math.round(ms * 1_000_000)

/**
 * The event stream: `<prefix>.evt.>`, interest retention, file storage, optional age and size limits,
 * `replicas` copies on a JetStream cluster (1 on a single server).
 */
export const streamConfig = (name: string, prefix: string, maxAgeMs: number, maxBytes: number, replicas = 1) => ({
  name,
  subjects: [eventWildcard(prefix)],
  retention: RetentionPolicy.Interest,
  storage: StorageType.File,
  num_replicas: replicas,
  max_age: nanos(maxAgeMs),
  max_bytes: maxBytes,
  duplicate_window: nanos(maxAgeMs > 0 ? Math.min(maxAgeMs, 120_000) : 120_000)
})

/** Settings of durable consumers. */
export interface ConsumerSettings {
  readonly ackWaitMs: number
  readonly maxAckPending: number
  readonly inactiveMs: number
  /** The server takes `filter_subjects`; otherwise several subjects are folded into one covering subject. */
  readonly multiFilter: boolean
}

/**
 * The durable pull consumer of a subscription: explicit acks, new events only, redelivered without
 * limit (the runtime dead-letters), and for `broadcast` removed after `inactiveMs` without its instance.
 */
export const consumerConfig = (
  spec: Pick<SubscriptionSpec, "service" | "version" | "subscription" | "delivery" | "instance">,
  subjects: ReadonlyArray<string>,
  s: ConsumerSettings
): Partial<ConsumerConfig> => ({
  durable_name: consumerName(spec),
  ack_policy: AckPolicy.Explicit,
  deliver_policy: DeliverPolicy.New,
  ack_wait: nanos(s.ackWaitMs),
  max_ack_pending: s.maxAckPending,
  max_deliver: -1,
  ...(s.multiFilter
    ? { filter_subject: "", filter_subjects: [...subjects] }
    : { filter_subject: subjects.length === 1 ? subjects[0]! : coveringSubject(subjects) }),
  ...(spec.delivery === "broadcast" ? { inactive_threshold: nanos(s.inactiveMs) } : {})
})
