/**
 * Discovery: every running service instance announces itself and its contracts, and a client can
 * list what is live on a bridge.
 *
 * It runs over three reserved events, on the generic bridge contract (so on every bridge):
 * - `herald.discovery.announced`: an instance's `Announcement`, published when it starts and in
 *   answer to each request;
 * - `herald.discovery.requested`: a `DiscoveryRequest`, published by `Discovery.list`; every
 *   instance receives it through a broadcast, non-durable subscription of its own;
 * - `herald.discovery.stopped`: an instance's `Stopped`, published when it closes.
 *
 * The `herald.` event namespace is reserved: `Event.make` and `Command.make({ emits })` reject it.
 * Every record is decoded with its schema on receipt; anything else is ignored.
 */
import { Clock, Duration, Effect, Queue, Result, Schema, type Scope } from "effect"
import { Bridge, type BridgeShape } from "./Bridge.ts"
import type { BridgeError } from "./BridgeError.ts"
import * as Codec from "./Codec.ts"
import type { Address } from "./Envelope.ts"
import * as JsonSchemas from "./internal/jsonSchema.ts"
import { RESERVED_SUBSCRIPTION } from "./internal/names.ts"
import { MessageContext } from "./MessageContext.ts"
import * as Runtime from "./Runtime.ts"
import type * as Service from "./Service.ts"

/** The event an instance publishes when it starts and in answer to each request. */
export const ANNOUNCED = "herald.discovery.announced"
/** The event `Discovery.list` publishes; every instance answers it with an announcement. */
export const REQUESTED = "herald.discovery.requested"
/** The event an instance publishes when it closes. */
export const STOPPED = "herald.discovery.stopped"
/** The name of each instance's discovery subscription (a reserved subscription name). */
export const SUBSCRIPTION = RESERVED_SUBSCRIPTION

/** A JSON Schema (draft 2020-12) as it crosses the wire: any JSON object. */
export const JsonSchemaValue = Schema.Record(Schema.String, Schema.Json)

/** What an instance tells about one of its commands. */
export const CommandInfo = Schema.Struct({
  name: Schema.String,
  /** JSON Schemas of the input, the output and each declared error (in wire form). */
  input: JsonSchemaValue,
  output: JsonSchemaValue,
  errors: Schema.Array(JsonSchemaValue),
  /** The event a successful call publishes, if any. */
  emits: Schema.optionalKey(Schema.String),
  idempotent: Schema.Boolean
})
/** What an instance tells about one of its commands, as a type. */
export type CommandInfo = typeof CommandInfo.Type

/** What an instance tells about one of its subscriptions. */
export const SubscriptionInfo = Schema.Struct({
  name: Schema.String,
  /** The subscription's content filter (DESIGN §5), as written. */
  filter: Schema.Json,
  /** JSON Schema of the payload. */
  payload: JsonSchemaValue,
  delivery: Schema.Literals(["shared", "broadcast"]),
  durable: Schema.Boolean
})
/** What an instance tells about one of its subscriptions, as a type. */
export type SubscriptionInfo = typeof SubscriptionInfo.Type

/** The payload of `herald.discovery.announced`. */
export const Announcement = Schema.Struct({
  service: Schema.String,
  version: Schema.String,
  instance: Schema.String,
  /** When the instance started, epoch milliseconds on its own clock. */
  startedAt: Schema.Number.check(Schema.isFinite()),
  /** How long it had been running when it announced, in milliseconds. */
  uptimeMs: Schema.Number.check(Schema.isFinite(), Schema.isGreaterThanOrEqualTo(0)),
  commands: Schema.Array(CommandInfo),
  subscriptions: Schema.Array(SubscriptionInfo),
  /** Named schemas the JSON Schemas above reference as `#/$defs/<name>`. */
  definitions: Schema.Record(Schema.String, JsonSchemaValue),
  /** The request this announcement answers; absent on the start announcement. */
  inReplyTo: Schema.optionalKey(Schema.String)
})
/** The payload of `herald.discovery.announced`, as a type. */
export type Announcement = typeof Announcement.Type

/** The payload of `herald.discovery.requested`. */
export const DiscoveryRequest = Schema.Struct({ requestId: Schema.String })

/** The payload of `herald.discovery.stopped`. */
export const Stopped = Schema.Struct({ service: Schema.String, version: Schema.String, instance: Schema.String })

/** A live service instance, as `Discovery.list` reports it. */
export interface ServiceInstance {
  readonly service: string
  readonly version: string
  readonly instance: string
  /** Epoch milliseconds, on the instance's clock. */
  readonly startedAt: number
  /** How long the instance had been running when it answered. */
  readonly uptime: Duration.Duration
  readonly commands: ReadonlyArray<CommandInfo>
  readonly subscriptions: ReadonlyArray<SubscriptionInfo>
  /** Named schemas referenced as `#/$defs/<name>` by the JSON Schemas of commands and subscriptions. */
  readonly definitions: Readonly<Record<string, Readonly<Record<string, Schema.Json>>>>
}

type Contract = Omit<Announcement, "instance" | "startedAt" | "uptimeMs" | "inReplyTo">

/** The static part of what an instance of `service` announces: its contracts, as JSON Schemas. */
export const describe = (service: Service.Any): Contract => {
  const roots: Array<Schema.Top> = []
  const slot = (schema: Schema.Top): number => roots.push(schema) - 1
  const commands = service.commands.map((c) => ({
    command: c,
    input: slot(c.input),
    output: slot(c.output),
    errors: c.errors.map(slot)
  }))
  const subscriptions = service.subscriptions.map((s) => ({ subscription: s, payload: slot(s.payload) }))
  const compiled = JsonSchemas.compile(roots)
  const at = (i: number) => compiled!.schemas[i] as Record<string, Schema.Json>
  return {
    service: service.name,
    version: service.version,
    commands: commands.map(({ command, errors, input, output }) => ({
      name: command.name,
      input: at(input),
      output: at(output),
      errors: errors.map(at),
      ...(command.emits === undefined ? {} : { emits: command.emits }),
      idempotent: command.idempotent
    })),
    subscriptions: subscriptions.map(({ payload, subscription }) => ({
      name: subscription.name,
      filter: subscription.filter as Schema.Json,
      payload: at(payload),
      delivery: subscription.delivery,
      durable: subscription.durable
    })),
    definitions: (compiled?.definitions ?? {}) as Record<string, Record<string, Schema.Json>>
  }
}

const encodeAnnouncement = Schema.encodeUnknownSync(Schema.toCodecJson(Announcement))
const decodeAnnouncement = Schema.decodeUnknownResult(Schema.toCodecJson(Announcement))
const decodeRequest = Schema.decodeUnknownResult(Schema.toCodecJson(DiscoveryRequest))
const decodeStopped = Schema.decodeUnknownResult(Schema.toCodecJson(Stopped))

/** Reads one event of the given names from the wire; `undefined` for anything else. */
const readEvent = (bytes: Uint8Array, names: ReadonlyArray<string>) => {
  const decoded = Codec.json.decode(bytes)
  if (Result.isFailure(decoded)) return undefined
  const env = decoded.success
  return env.kind === "event" && names.includes(env.type) ? env : undefined
}

/** Publishes one discovery event as `self`, outside any message context (no tenant, no principal). */
const publishAs = (bridge: BridgeShape, self: Address, name: string, data: unknown) =>
  Effect.provideService(Runtime.publishEncoded(bridge, name, data), MessageContext, { self })

/**
 * Announces an instance of `service` until the scope closes: answers every discovery request,
 * announces itself now, and publishes `herald.discovery.stopped` when the scope closes (bounded by
 * 2 s; a bridge that cannot publish then only delays nothing). `Service.toLayer` calls it after the
 * instance serves all its commands and subscriptions, unless `discovery: false`.
 */
export const announce = (
  bridge: BridgeShape,
  self: Address & { readonly instance: string },
  service: Service.Any
): Effect.Effect<void, BridgeError, Scope.Scope> =>
  Effect.gen(function*() {
    const contract = describe(service)
    const startedAt = yield* Clock.currentTimeMillis
    const announcement = (inReplyTo: string | undefined) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        publishAs(bridge, self, ANNOUNCED, encodeAnnouncement({
          ...contract,
          instance: self.instance,
          startedAt,
          uptimeMs: Math.max(0, now - startedAt),
          ...(inReplyTo === undefined ? {} : { inReplyTo })
        })))
    yield* bridge.subscribe({
      service: self.service,
      version: self.version,
      instance: self.instance,
      subscription: SUBSCRIPTION,
      delivery: "broadcast",
      durable: false,
      eventNames: [REQUESTED]
    }, (message) => {
      const env = readEvent(message.bytes, [REQUESTED])
      const request = env === undefined ? undefined : decodeRequest(env.data)
      if (request === undefined || Result.isFailure(request)) return Effect.void
      return announcement(request.success.requestId).pipe(
        Effect.catch((e) => Effect.logWarning(`herald: ${self.service} could not answer discovery: ${e.message}`))
      )
    })
    yield* announcement(undefined)
    yield* Effect.addFinalizer(() =>
      publishAs(bridge, self, STOPPED, { service: self.service, version: self.version, instance: self.instance }).pipe(
        Effect.timeoutOption("2 seconds"),
        Effect.ignore
      )
    )
  })

/** Options of `Discovery.list`. */
export interface ListOptions {
  /** How long to collect announcements after the request. Default 500 ms. */
  readonly within?: Duration.Input | undefined
  /** Only instances of this service. Default: every service. */
  readonly service?: string | undefined
}

const LISTER: Omit<Address, "instance"> = { service: "herald", version: "0" }

/**
 * Lists the service instances live on the bridge: publishes a discovery request and collects the
 * announcements that arrive within the window (an instance that stops within it is left out).
 * Sorted by service, version, then start time. An instance that is alive but slower to answer than
 * the window is missed: widen `within` on a slow broker.
 */
export const list = (options?: ListOptions): Effect.Effect<ReadonlyArray<ServiceInstance>, BridgeError, Bridge> =>
  Effect.scoped(Effect.gen(function*() {
    const within = Duration.fromInputUnsafe(options?.within ?? "500 millis")
    const bridge = yield* Bridge
    const requestId = Runtime.newId()
    const arrived = yield* Queue.unbounded<Uint8Array>()
    yield* bridge.subscribe({
      ...LISTER,
      instance: requestId,
      subscription: "discovery-list",
      delivery: "broadcast",
      durable: false,
      eventNames: [ANNOUNCED, STOPPED]
    }, (message) => Effect.asVoid(Queue.offer(arrived, message.bytes)))
    yield* publishAs(bridge, { ...LISTER, instance: requestId }, REQUESTED, { requestId })
    yield* Effect.sleep(within)
    const live = new Map<string, ServiceInstance>()
    for (const bytes of yield* Queue.clear(arrived)) {
      const env = readEvent(bytes, [ANNOUNCED, STOPPED])
      if (env?.type === STOPPED) {
        const stopped = decodeStopped(env.data)
        if (Result.isSuccess(stopped)) live.delete(stopped.success.instance)
      } else if (env !== undefined) {
        const a = decodeAnnouncement(env.data)
        if (Result.isFailure(a)) {
          yield* Effect.logWarning(`herald: discovery ignored an invalid announcement: ${a.failure.message}`)
          continue
        }
        const { inReplyTo: _, uptimeMs, ...rest } = a.success
        if (options?.service !== undefined && rest.service !== options.service) continue
        live.set(rest.instance, { ...rest, uptime: Duration.millis(uptimeMs) })
      }
    }
    return [...live.values()].sort((a, b) =>
      a.service.localeCompare(b.service) || a.version.localeCompare(b.version) || a.startedAt - b.startedAt
    )
  }))
