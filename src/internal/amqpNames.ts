/**
 * The names of the AMQP 0-9-1 wire mapping of Herald: the name prefix, exchange and queue names,
 * the tenant word, routing and binding keys (pure functions; `docs/amqp-wire.md` describes the
 * same scheme for non-Herald clients, so the two must change together).
 */
import { createHash } from "node:crypto"
import type { CommandAddress, EventRoute, SubscriptionSpec } from "../Bridge.ts"
import * as Token from "./tenantToken.ts"

/** AMQP short strings (exchange and queue names, routing keys) hold at most 255 bytes. */
const SHORTSTR = 255
/** Longest prefix: leaves room for the longest queue name Herald derives from it. */
const MAX_PREFIX = 64
/** An encoded tenant longer than this is replaced by its hash, so that routing keys stay short. */
const MAX_TENANT_WORD = 64

const WORD = /^[A-Za-z0-9_-]+$/
const WORDS = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/

const bytes = (s: string): number => Buffer.byteLength(s, "utf8")

/** True when `s` is one routing-key word Herald writes: letters, digits, `_` and `-`. */
export const isWord = (s: string): boolean => WORD.test(s)

/** True when `s` is one or more words joined by `.` (an event name). */
export const isWords = (s: string): boolean => WORDS.test(s)

/** True for a valid name prefix: words of `[A-Za-z0-9_-]` joined by `.`, at most 64 characters. */
export const isValidPrefix = (prefix: string): boolean => prefix.length <= MAX_PREFIX && WORDS.test(prefix)

/** `<prefix>.events`: the durable topic exchange every event is published to. */
export const eventsExchange = (prefix: string): string => `${prefix}.events`

/** `<prefix>.dead-letters`: the durable fanout exchange, and its queue, for messages the broker gives up on. */
export const deadLetters = (prefix: string): string => `${prefix}.dead-letters`

/** `<prefix>.cmd.<service>.<version>.<command>`: the queue a command is served from (default exchange). */
export const commandQueue = (prefix: string, a: CommandAddress): string =>
  `${prefix}.cmd.${a.service}.${a.version}.${a.command}`

/** True when every part of a command address is one word, so that its queue name is unambiguous. */
export const isValidAddress = (a: CommandAddress): boolean => isWord(a.service) && isWord(a.version) && isWord(a.command)

/**
 * The queue of a subscription: `<prefix>.sub.…` when durable, `<prefix>.tmp.…` otherwise, then
 * `<service>.<version>.<subscription>`, with `.<instance>` appended for `broadcast` delivery.
 * `undefined` when a part is not a word or the name would be too long.
 */
export const subscriptionQueue = (
  prefix: string,
  spec: Pick<SubscriptionSpec, "service" | "version" | "subscription" | "instance" | "delivery" | "durable">
): string | undefined => {
  const parts = [spec.service, spec.version, spec.subscription, ...(spec.delivery === "broadcast" ? [spec.instance] : [])]
  if (!parts.every(isWord)) return undefined
  const name = `${prefix}.${spec.durable ? "sub" : "tmp"}.${parts.join(".")}`
  return bytes(name) <= SHORTSTR ? name : undefined
}

export { EMPTY_TENANT, NO_TENANT } from "./tenantToken.ts"

/**
 * Encodes an optional tenant id as exactly one routing-key word: the shared tenant token
 * (`tenantToken.ts`), except that a token longer than 64 characters is replaced by `~` and the
 * unpadded base64url SHA-256 of that token (43 characters), so routing keys stay short. Without the
 * hash the encoding is injective; with it, two tenants share a word only on a SHA-256 collision, and
 * even then routing stays a superset (the runtime re-checks the tenant).
 */
export const encodeTenant = (tenantId: string | undefined): string => {
  const token = Token.encodeTenant(tenantId)
  return token.length <= MAX_TENANT_WORD ? token : `~${createHash("sha256").update(token).digest("base64url")}`
}

/**
 * Decodes a tenant word: the tenant id, `undefined` for no tenant, or `null` when it is not a
 * tenant word or is a hashed one (which cannot be decoded).
 */
export const decodeTenant = (word: string): string | undefined | null => Token.decodeTenant(word)

/**
 * `<tenant-word>.<sender-service>.<event-name>`: the routing key of an event on the events
 * exchange, or `undefined` when the sender is not one word, the event name not dot-joined words,
 * or the key longer than 255 bytes. The event name keeps its dots: it is the last 1..n words.
 */
export const routingKey = (route: EventRoute): string | undefined => {
  if (!isWord(route.senderService) || !isWords(route.eventName)) return undefined
  const key = `${encodeTenant(route.tenantId)}.${route.senderService}.${route.eventName}`
  return bytes(key) <= SHORTSTR ? key : undefined
}

/**
 * The binding keys of a subscription on the events exchange: one per (tenant, event name) pair,
 * `*` for any tenant, `#` for any event name, `*` for the sender always; `#` alone when neither is
 * constrained. A superset of the exact filter. Names that cannot be routing keys are dropped (no
 * Herald publisher can send them), so the result may be empty.
 */
export const bindingKeys = (spec: Pick<SubscriptionSpec, "eventNames" | "tenantIds">): ReadonlyArray<string> => {
  if (spec.eventNames === undefined && spec.tenantIds === undefined) return ["#"]
  const tenants = spec.tenantIds === undefined ? ["*"] : spec.tenantIds.map(encodeTenant)
  const names = spec.eventNames === undefined ? ["#"] : spec.eventNames.filter(isWords)
  const out = new Set<string>()
  for (const tenant of tenants) {
    for (const name of names) {
      const key = `${tenant}.*.${name}`
      if (bytes(key) <= SHORTSTR) out.add(key)
    }
  }
  return [...out]
}
