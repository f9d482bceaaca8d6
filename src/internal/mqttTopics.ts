/**
 * The MQTT wire mapping of Herald: topics, share names, durable client ids, the tenant level, and
 * the retained registry messages (presence of command servers, leases of durable sessions) with
 * their in-memory mirror. Pure code; `docs/mqtt-wire.md` describes the same scheme for non-Herald
 * clients, so the two must change together.
 */
import type { CommandAddress, EventRoute, SubscriptionSpec } from "../Bridge.ts"

/** One topic level as Herald writes it: letters, digits, `_` and `-`. */
const LEVEL = /^[A-Za-z0-9_-]+$/
/** One or more levels joined by `/`: a topic prefix. */
const LEVELS = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/
/** A dot-separated run of level-safe segments: an event name. */
const DOTTED = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/

/** True when `s` is one topic level Herald can write (never empty, never `+`, `#`, `/` or `$…`). */
export const isLevel = (s: string): boolean => LEVEL.test(s)

/** True when `s` is one or more levels joined by `/` (a topic prefix such as `acme/herald`). */
export const isLevels = (s: string): boolean => LEVELS.test(s)

/**
 * True when `s` may be the topic of a PUBLISH (MQTT 5 §4.7): not empty, no wildcard (`+`, `#`), no
 * U+0000, at most 65,535 bytes. A reply to a command whose Response Topic is not one would be a protocol
 * error that makes the broker drop the serving connection.
 */
export const isTopicName = (s: string): boolean =>
  s.length > 0 && !/[+#\u0000]/.test(s) && Buffer.byteLength(s) <= 65_535

/** True when every part of a command address can be a topic level. */
export const isValidAddress = (a: CommandAddress): boolean => isLevel(a.service) && isLevel(a.version) && isLevel(a.command)

import { encodeTenant } from "./tenantToken.ts"

export { decodeTenant, EMPTY_TENANT, encodeTenant, NO_TENANT } from "./tenantToken.ts"

/** `<prefix>/cmd/<service>/<version>/<command>`: where a command is published. */
export const commandTopic = (prefix: string, a: CommandAddress): string =>
  `${prefix}/cmd/${a.service}/${a.version}/${a.command}`

/**
 * `$share/<service>.<version>.<command>/<prefix>/cmd/<service>/<version>/<command>`: the shared
 * subscription of a command's competing servers, one share name per command address.
 */
export const commandFilter = (prefix: string, a: CommandAddress): string =>
  `$share/${a.service}.${a.version}.${a.command}/${commandTopic(prefix, a)}`

/** `<prefix>/inbox/<client-id>`: the reply topic of one bridge; requests are told apart by correlation data. */
export const inboxTopic = (prefix: string, clientId: string): string => `${prefix}/inbox/${clientId}`

/** `<prefix>/presence/<client-id>`: the retained list of command addresses one bridge serves. */
export const presenceTopic = (prefix: string, clientId: string): string => `${prefix}/presence/${clientId}`

/** `<prefix>/presence/+`: every bridge's presence. */
export const presenceFilter = (prefix: string): string => `${prefix}/presence/+`

/** `<prefix>/lease/<service>/<version>/<subscription>`: who holds the session of a durable shared subscription. */
export const leaseTopic = (prefix: string, spec: Pick<SubscriptionSpec, "service" | "version" | "subscription">): string =>
  `${prefix}/lease/${spec.service}/${spec.version}/${spec.subscription}`

/** `<prefix>/lease/#`: every lease. */
export const leaseFilter = (prefix: string): string => `${prefix}/lease/#`

/**
 * `<prefix>/evt/<tenant-level>/<senderService>/<event/name/levels>`, or `undefined` when the sender
 * or the event name cannot go in a topic. The dots of the event name become level separators.
 */
export const eventTopic = (prefix: string, route: EventRoute): string | undefined =>
  isLevel(route.senderService) && DOTTED.test(route.eventName)
    ? `${prefix}/evt/${encodeTenant(route.tenantId)}/${route.senderService}/${route.eventName.replaceAll(".", "/")}`
    : undefined

/**
 * The broker-side pre-filter of a subscription: one topic filter per (tenant, event name) pair,
 * `+` for any tenant and `#` for any event name; the sender level is always `+`. Always a superset
 * of the exact filter. Names that cannot be topics are dropped (publishing rejects them), so the
 * result may be empty.
 */
export const filterTopics = (
  prefix: string,
  spec: Pick<SubscriptionSpec, "eventNames" | "tenantIds">
): ReadonlyArray<string> => {
  const tenants = spec.tenantIds === undefined ? ["+"] : spec.tenantIds.map(encodeTenant)
  const names = spec.eventNames === undefined ? ["#"] : spec.eventNames.filter((n) => DOTTED.test(n))
  const out = new Set<string>()
  for (const tenant of tenants) {
    for (const name of names) out.add(`${prefix}/evt/${tenant}/+/${name.replaceAll(".", "/")}`)
  }
  return [...out]
}

/** `$share/<service>.<version>.<subscription>/<filter>`: a non-durable `shared` subscription's filter. */
export const sharedEventFilter = (spec: Pick<SubscriptionSpec, "service" | "version" | "subscription">, filter: string): string =>
  `$share/${spec.service}.${spec.version}.${spec.subscription}/${filter}`

/** A client-id part from free text: characters other than letters, digits, `_`, `-` and `.` become `-`. */
const sanitise = (s: string): string => s.replace(/[^A-Za-z0-9_.-]/g, "-")

/**
 * The stable client id of a durable subscription's persistent session:
 * `<prefix>:<service>/<version>/<subscription>` for `shared` delivery, with `/<instance>` appended
 * for `broadcast`. The prefix keeps its `/`; names never contain `:` or `/`, so the id is injective.
 */
export const durableClientId = (
  prefix: string,
  spec: Pick<SubscriptionSpec, "service" | "version" | "subscription" | "delivery" | "instance">
): string => {
  const base = `${prefix}:${sanitise(spec.service)}/${sanitise(spec.version)}/${sanitise(spec.subscription)}`
  return spec.delivery === "shared" ? base : `${base}/${sanitise(spec.instance)}`
}

/** The Message Expiry Interval of a command: whole seconds until its deadline, rounded up, at least 1. */
export const expirySeconds = (expiresAt: number, now: number): number => Math.max(1, Math.ceil((expiresAt - now) / 1000))

const encoder = new TextEncoder()
const decoder = new TextDecoder()

const parse = (bytes: Uint8Array): unknown => {
  try {
    return JSON.parse(decoder.decode(bytes))
  } catch {
    return undefined
  }
}

/** The payload of a presence message: `{"commands":["<service>/<version>/<command>", …]}`. */
export const encodePresence = (commands: Iterable<string>): Uint8Array =>
  encoder.encode(JSON.stringify({ commands: [...commands].sort() }))

/** The command addresses of a presence payload, or `undefined` when it is not one. */
export const decodePresence = (bytes: Uint8Array): ReadonlyArray<string> | undefined => {
  const value = parse(bytes) as { readonly commands?: unknown } | undefined
  const commands = value?.commands
  return Array.isArray(commands) && commands.every((c) => typeof c === "string") ? commands as Array<string> : undefined
}

/** The payload of a lease message: `{"holder":"<client-id of the holding bridge>"}`. */
export const encodeLease = (holder: string): Uint8Array => encoder.encode(JSON.stringify({ holder }))

/** The holder named by a lease payload, or `undefined` when it is not one. */
export const decodeLease = (bytes: Uint8Array): string | undefined => {
  const holder = (parse(bytes) as { readonly holder?: unknown } | undefined)?.holder
  return typeof holder === "string" ? holder : undefined
}

interface Entry<A> {
  readonly value: A
  readonly expiresAt: number
  readonly generation: number
}

/**
 * The in-memory mirror of retained registry messages (presence or leases), keyed by topic.
 * Each entry is valid until its expiry; after a resubscription, entries not re-sent by the broker
 * are pruned by generation.
 */
export class Mirror<A> {
  private readonly entries = new Map<string, Entry<A>>()
  private readonly index = new Map<string, Set<string>>()
  private readonly keysOf: (value: A) => Iterable<string>

  /** `keysOf` lists what an entry offers (the command addresses of a presence), for `has`. */
  constructor(keysOf: (value: A) => Iterable<string> = () => []) {
    this.keysOf = keysOf
  }

  /** Records the retained value of `topic`, valid until `expiresAt`, seen in connection `generation`. */
  set(topic: string, value: A, expiresAt: number, generation: number): void {
    this.delete(topic)
    this.entries.set(topic, { value, expiresAt, generation })
    for (const key of this.keysOf(value)) {
      let owners = this.index.get(key)
      if (owners === undefined) this.index.set(key, owners = new Set())
      owners.add(topic)
    }
  }

  /** Forgets `topic` (its retained message was cleared). */
  delete(topic: string): void {
    const entry = this.entries.get(topic)
    if (entry === undefined) return
    this.entries.delete(topic)
    for (const key of this.keysOf(entry.value)) {
      const owners = this.index.get(key)
      owners?.delete(topic)
      if (owners?.size === 0) this.index.delete(key)
    }
  }

  /** Drops every entry last seen before connection `generation`. */
  prune(generation: number): void {
    for (const [topic, entry] of [...this.entries]) if (entry.generation < generation) this.delete(topic)
  }

  /** The unexpired value of `topic`. */
  get(topic: string, now: number): A | undefined {
    const entry = this.entries.get(topic)
    return entry !== undefined && entry.expiresAt > now ? entry.value : undefined
  }

  /** True when some unexpired entry lists `key` (a command address for presence). */
  has(key: string, now: number): boolean {
    const owners = this.index.get(key)
    if (owners === undefined) return false
    for (const topic of owners) if ((this.entries.get(topic)?.expiresAt ?? 0) > now) return true
    return false
  }
}
