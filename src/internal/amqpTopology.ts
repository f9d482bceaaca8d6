/**
 * The AMQP 0-9-1 wire mapping of Herald: queue arguments and message properties (pure functions;
 * `docs/amqp-wire.md` describes the same scheme for non-Herald clients, so the two must change
 * together), with the names of the mapping (exchanges, queues, the tenant word, routing and binding
 * keys) re-exported from `amqpNames.ts`. Then the connection plumbing under the bridge: broker
 * targets from URLs, write coalescing, publisher confirms awaited without a timer each, batched
 * acknowledgements.
 */
import { type Channel, type ChannelModel, type ConfirmChannel, credentials, type Message, type Options, type SocketOptions } from "amqplib"
import type { ConnectionOptions as TlsOptions } from "node:tls"
import type { SubscriptionSpec } from "../Bridge.ts"
import { deadLetters, eventsExchange } from "./amqpNames.ts"

/** The names of the wire mapping (prefix, exchanges, queues, tenant word, routing and binding keys). */
export * from "./amqpNames.ts"

/** The pseudo-queue of RabbitMQ's direct reply-to: replies go straight to the requesting channel. */
export const DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
/** The content type of every Herald message: CloudEvents 1.0 in structured JSON mode. */
export const CONTENT_TYPE = "application/cloudevents+json"

/** Broker-side settings of the queues Herald declares. */
export interface QueueSettings {
  /** Durable queues are quorum queues (replicated, at-least-once) or classic ones. */
  readonly queueType: "quorum" | "classic"
  /** Quorum queues: deliveries of one message before the broker dead-letters it. */
  readonly deliveryLimit: number
  /** Durable `broadcast` queues: deleted by the broker after this long without a consumer. */
  readonly broadcastExpiresMs: number
}

const transient = { "x-queue-type": "classic" }

/** A command queue: classic, transient, auto-deleted with its last consumer, so it exists only while served. */
export const commandQueueOptions: Options.AssertQueue = { durable: false, autoDelete: true, arguments: transient }

/** The dead-letter queue: durable, of the configured type. */
export const deadLetterQueueOptions = (s: QueueSettings): Options.AssertQueue => ({
  durable: true,
  arguments: { "x-queue-type": s.queueType }
})

/**
 * The queue of a subscription. Durable: durable, dead-lettering to `<prefix>.dead-letters`, with a
 * delivery limit on quorum queues, and for `broadcast` an expiry after `broadcastExpiresMs` unused.
 * Non-durable: transient classic queues deleted with their last consumer, exclusive for `broadcast`.
 */
export const subscriptionQueueOptions = (
  prefix: string,
  spec: Pick<SubscriptionSpec, "delivery" | "durable">,
  s: QueueSettings
): Options.AssertQueue => {
  const broadcast = spec.delivery === "broadcast"
  if (!spec.durable) return { durable: false, autoDelete: true, exclusive: broadcast, arguments: transient }
  return {
    durable: true,
    arguments: {
      "x-queue-type": s.queueType,
      "x-dead-letter-exchange": deadLetters(prefix),
      ...(s.queueType === "quorum" ? { "x-delivery-limit": s.deliveryLimit } : {}),
      ...(broadcast ? { "x-expires": s.broadcastExpiresMs } : {})
    }
  }
}

/** True for a RabbitMQ version with quorum queues (3.8 and later). */
export const supportsQuorum = (version: string | undefined): boolean => {
  const [major = 0, minor = 0] = (version ?? "").split(".").map((n) => parseInt(n, 10) || 0)
  return major > 3 || (major === 3 && minor >= 8)
}

/** Extra lifetime given to a command beyond its deadline, so an expired command still reaches the runtime, which counts it. */
export const EXPIRY_GRACE_MS = 1000

/** The `expiration` property of a command: milliseconds left until its deadline, plus the grace. */
export const expirationOf = (expiresAt: number, now: number): string =>
  String(Math.max(0, Math.ceil(expiresAt - now)) + EXPIRY_GRACE_MS)

/**
 * How often a message was delivered, this delivery included: from the quorum queues'
 * `x-delivery-count` header (deliveries before this one) or, for classic queues, the `redelivered` flag.
 * A header that is not a count (any publisher may set one) is ignored: the result is always a safe
 * integer, at least 1, and at least 2 when redelivered.
 */
export const deliveryCountOf = (redelivered: boolean, headers: Record<string, unknown> | undefined): number => {
  const count = headers?.["x-delivery-count"]
  const least = redelivered ? 2 : 1
  return Number.isSafeInteger(count) && (count as number) >= 0 && (count as number) < Number.MAX_SAFE_INTEGER
    ? Math.max((count as number) + 1, least)
    : least
}

/**
 * Declares what every Herald connection needs, idempotently: the events exchange, the dead-letter
 * exchange and its queue. On a channel of its own, closed afterwards.
 */
export const declareCore = async (model: ChannelModel, prefix: string, s: QueueSettings): Promise<void> => {
  const ch = await model.createChannel()
  ch.on("error", () => undefined) // the failed call rejects too
  await ch.assertExchange(eventsExchange(prefix), "topic", { durable: true })
  await ch.assertExchange(deadLetters(prefix), "fanout", { durable: true })
  await ch.assertQueue(deadLetters(prefix), deadLetterQueueOptions(s))
  await ch.bindQueue(deadLetters(prefix), deadLetters(prefix), "")
  await ch.close()
}

// ---------------------------------------------------------------------------------------------
// connection plumbing: where to connect, how frames are written, confirms awaited, acks sent
// ---------------------------------------------------------------------------------------------

/** Publisher confirms awaited by one bridge (see `makeConfirms`). */
export interface Confirms {
  /**
   * Publishes on a confirm channel; `done` is called once: without an error when the broker
   * confirmed, with one when it nacked, the channel closed, or `sweep` passed the deadline.
   * Returns the cancellation for an interrupted publish.
   */
  readonly publish: (
    ch: ConfirmChannel,
    exchange: string,
    key: string,
    content: Buffer,
    options: Options.Publish,
    deadline: number,
    done: (error: unknown) => void
  ) => () => void
  /** Fails the publishes whose deadline (epoch ms) has passed. */
  readonly sweep: (now: number) => void
}

/**
 * Tracks publishes waiting for their confirm in publish order, which is deadline order when every
 * publish has the same timeout, so that one periodic sweep replaces a timer per publish.
 */
export const makeConfirms = (): Confirms => {
  const waiting = new Map<number, { readonly deadline: number; readonly done: (error: unknown) => void }>()
  let seq = 0
  return {
    publish: (ch, exchange, key, content, options, deadline, done) => {
      const n = ++seq
      waiting.set(n, { deadline, done })
      try {
        ch.publish(exchange, key, content, options, (err: unknown) => {
          if (waiting.delete(n)) done(err === null ? undefined : err ?? undefined)
        })
      } catch (e) {
        waiting.delete(n)
        done(e)
      }
      return () => void waiting.delete(n)
    },
    sweep: (now) => {
      for (const [n, w] of waiting) {
        if (w.deadline > now) break
        waiting.delete(n)
        w.done(new Error("no confirm from the broker in time"))
      }
    }
  }
}

/** One broker to connect to, as amqplib takes it, and its display form (without credentials). */
export interface Target {
  readonly options: Options.Connect
  readonly socket: SocketOptions
  readonly display: string
}

/** What `targetsOf` needs from the bridge's configuration. */
export interface TargetSettings {
  readonly urls: ReadonlyArray<string>
  readonly username: string | undefined
  readonly password: string | undefined
  readonly vhost: string | undefined
  readonly tls: TlsOptions | undefined
  readonly externalAuth: boolean
  readonly heartbeatSeconds: number
  readonly timeoutMs: number
  readonly connectionName: string
}

/**
 * The brokers to connect to, in order, or the reason the settings are unusable. Credentials and
 * vhost given separately override those of the URLs; sockets have Nagle's algorithm off (`noDelay`).
 */
export const targetsOf = (s: TargetSettings): ReadonlyArray<Target> | string => {
  if (s.urls.length === 0) return "no broker URL given"
  const targets: Array<Target> = []
  for (const url of s.urls) {
    const parts = URL.canParse(url) ? new URL(url) : undefined
    if (parts === undefined || (parts.protocol !== "amqp:" && parts.protocol !== "amqps:")) {
      return `${JSON.stringify(url.replace(/\/\/[^@/]*@/, "//***@"))} is not an amqp:// or amqps:// URL`
    }
    const secure = parts.protocol === "amqps:"
    const vhost = s.vhost ?? (parts.pathname.length > 1 ? decodeURIComponent(parts.pathname.slice(1)) : "/")
    const username = s.username ?? (parts.username === "" ? undefined : decodeURIComponent(parts.username))
    const password = s.password ?? (parts.password === "" ? undefined : decodeURIComponent(parts.password))
    targets.push({
      options: {
        protocol: secure ? "amqps" : "amqp",
        hostname: parts.hostname.replace(/^\[|\]$/g, ""),
        port: parts.port === "" ? (secure ? 5671 : 5672) : Number(parts.port),
        vhost: encodeURIComponent(vhost), // amqplib unescapes it
        heartbeat: s.heartbeatSeconds,
        ...(username === undefined && password === undefined ? {} : { username: username ?? "", password: password ?? "" })
      },
      socket: {
        ...(secure ? s.tls : undefined),
        noDelay: true, // Nagle's algorithm stalls request/reply on small frames
        timeout: s.timeoutMs,
        clientProperties: { connection_name: s.connectionName },
        ...(s.externalAuth ? { credentials: credentials.external() } : {})
      },
      display: `${parts.protocol}//${parts.host}/${vhost === "/" ? "" : vhost}`
    })
  }
  if ((s.tls !== undefined || s.externalAuth) && !targets.some((t) => t.options.protocol === "amqps")) {
    return "TLS options or external authentication are given but no URL is amqps://"
  }
  return targets
}

interface Corkable {
  write: (...args: Array<unknown>) => boolean
  cork: () => void
  uncork: () => void
}

const isCorkable = (u: unknown): u is Corkable =>
  typeof u === "object" && u !== null &&
  ["write", "cork", "uncork"].every((k) => typeof (u as Record<string, unknown>)[k] === "function")

/**
 * Coalesces the frames amqplib writes in one pass into one socket write: amqplib writes every frame
 * separately, and with Nagle's algorithm off each write is a system call and a TCP segment. The
 * socket is corked at the first write of a tick and uncorked in a microtask, after amqplib's
 * synchronous write loop: nothing waits past the current tick. A no-op if the socket is not reachable.
 */
export const coalesceWrites = (model: ChannelModel): void => {
  const socket: unknown = (model.connection as { readonly stream?: unknown }).stream
  if (!isCorkable(socket)) return
  const write = socket.write.bind(socket)
  let corked = false
  const uncork = () => {
    corked = false
    socket.uncork()
  }
  socket.write = (...args) => {
    if (!corked) {
      corked = true
      socket.cork()
      queueMicrotask(uncork)
    }
    return write(...args)
  }
}

/** Calls `f`, ignoring a throw: settling on a channel that has closed (the broker requeues by itself). */
const quietly = (f: () => void): void => {
  try {
    f()
  } catch {
    // the channel is closed
  }
}

/** Settles the deliveries of one channel (see `makeAcker`). */
export interface Acker {
  /** Records a delivery, in the order the channel received them. */
  readonly delivered: (msg: Message) => void
  /** Acknowledges a delivery, batched with the others settled in the same tick. */
  readonly ack: (msg: Message) => void
  /** Rejects a delivery at once, returning it to its queue when `requeue`. */
  readonly nack: (msg: Message, requeue: boolean) => void
  /** Sends the acknowledgements still batched. */
  readonly flush: () => void
}

/**
 * Batches the acknowledgements of one channel (one consumer per channel): at the end of the tick,
 * one `multiple` ack covers the longest run of settled deliveries from the oldest one in flight, and
 * deliveries settled after a gap are acked one by one. A delivery still being handled (or waiting
 * for a delayed requeue) is never covered. Acks and nacks on a closed channel are dropped: the
 * broker has requeued those deliveries.
 */
export const makeAcker = (ch: Pick<Channel, "ack" | "nack">): Acker => {
  interface Entry {
    readonly msg: Message
    settled: "no" | "acked" | "nacked"
  }
  let inflight: Array<Entry> = []
  const byTag = new Map<number, Entry>()
  let scheduled = false
  const flush = () => {
    scheduled = false
    let prefix = 0
    let last: Entry | undefined
    while (prefix < inflight.length && inflight[prefix]!.settled !== "no") {
      if (inflight[prefix]!.settled === "acked") last = inflight[prefix]
      prefix++
    }
    if (last !== undefined) quietly(() => ch.ack(last.msg, true))
    const rest: Array<Entry> = []
    for (let i = 0; i < inflight.length; i++) {
      const e = inflight[i]!
      if (i >= prefix && e.settled === "no") {
        rest.push(e)
        continue
      }
      byTag.delete(e.msg.fields.deliveryTag)
      if (i >= prefix && e.settled === "acked") quietly(() => ch.ack(e.msg))
    }
    inflight = rest
  }
  return {
    delivered: (msg) => {
      const e: Entry = { msg, settled: "no" }
      inflight.push(e)
      byTag.set(msg.fields.deliveryTag, e)
    },
    ack: (msg) => {
      const e = byTag.get(msg.fields.deliveryTag)
      if (e === undefined || e.settled !== "no") return
      e.settled = "acked"
      if (!scheduled) {
        scheduled = true
        queueMicrotask(flush)
      }
    },
    nack: (msg, requeue) => {
      const e = byTag.get(msg.fields.deliveryTag)
      if (e !== undefined) e.settled = "nacked"
      quietly(() => ch.nack(msg, false, requeue))
    },
    flush
  }
}
