/**
 * The gateway's live view: `GET /` serves one self-contained page, `GET /live.json` the data it polls.
 *
 * The data is what the gateway process can honestly know: the live instances and their contracts
 * (`Discovery.list`, refreshed at most every `refresh`), this process's metrics (`Metric.snapshot`:
 * the gateway's own client-side calls for every command it invoked, serving-side figures only for
 * services running in this same process), and a tail of recent events it received through one
 * broadcast, non-durable subscription to every event (discovery traffic excluded).
 *
 * Rates and p99 are computed over a sliding window of snapshots taken on each `/live.json` request:
 * the rate is the counter's delta over the window's span; p99 comes from the histogram's bucket
 * deltas over the window (all time when the window saw no call), linearly interpolated inside the
 * bucket that holds the 99th percentile and clamped to the observed maximum.
 */
import { Clock, Duration, Effect, Metric, Result, Semaphore, type Scope } from "effect"
import { Bridge, type BridgeShape } from "../Bridge.ts"
import { type BridgeError, DefinitionError } from "../BridgeError.ts"
import * as Codec from "../Codec.ts"
import * as Discovery from "../Discovery.ts"
import * as Metrics from "../Metrics.ts"
import * as Runtime from "../Runtime.ts"
import type * as Service from "../Service.ts"

/** Options of the live view (`GatewayOptions.liveView`). */
export interface LiveViewOptions {
  /** How many recent events the tail keeps. Default 50. */
  readonly recentEvents?: number | undefined
  /** Show event payloads in the tail. Default `false`: name, sender, time and tenant only. */
  readonly payloads?: boolean | undefined
  /** How long each discovery round collects announcements. Default 300 ms. */
  readonly discoveryWindow?: Duration.Input | undefined
  /** The shortest time between two discovery rounds; polls in between reuse the last list. Default 2 s. */
  readonly refresh?: Duration.Input | undefined
  /** The sliding window of call rates and p99. Default 30 s. */
  readonly rateWindow?: Duration.Input | undefined
}

/** Figures of one command as seen from one side. */
export interface CommandFigures {
  readonly calls: number
  readonly errors: number
  /** Calls per second over the rate window; `null` until two samples exist. */
  readonly ratePerSecond: number | null
  /** Estimated 99th percentile latency in milliseconds; `null` without any call. */
  readonly p99Ms: number | null
}

/** One event of the tail. */
export interface TailEvent {
  readonly id: string
  readonly name: string
  readonly sender: { readonly service: string; readonly version: string; readonly instance?: string | undefined }
  readonly time: number
  readonly tenantId?: string | undefined
  readonly data?: unknown
}

type Key = string
interface Hist { readonly buckets: ReadonlyArray<readonly [number, number]>; readonly count: number; readonly max: number }
interface Side { readonly calls: number; readonly errors: number; readonly hist: Hist | undefined }
interface Sample { readonly at: number; readonly client: Map<Key, Side>; readonly server: Map<Key, Side> }

const keyOf = (a: Metric.Metric.AttributeSet | undefined): Key => `${a?.["service"]}/${a?.["version"]}/${a?.["command"]}`

/** Reads the command figures of this process's metric registry, by `service/version/command`. */
const sample = (at: number, snapshot: ReadonlyArray<Metric.Metric.Snapshot>): Sample => {
  const client = new Map<Key, { calls: number; errors: number; hist: Hist | undefined }>()
  const server = new Map<Key, { calls: number; errors: number; hist: Hist | undefined }>()
  const entry = (map: typeof client, key: Key) => {
    let e = map.get(key)
    if (e === undefined) map.set(key, e = { calls: 0, errors: 0, hist: undefined })
    return e
  }
  for (const m of snapshot) {
    if (m.type === "Counter" && (m.id === Metrics.clientCalls.id || m.id === Metrics.commandHandled.id)) {
      const e = entry(m.id === Metrics.clientCalls.id ? client : server, keyOf(m.attributes))
      const n = Number(m.state.count)
      e.calls += n
      if (m.attributes?.["outcome"] !== "ok") e.errors += n
    } else if (m.type === "Histogram" && (m.id === Metrics.clientCallDuration.id || m.id === Metrics.commandDuration.id)) {
      const e = entry(m.id === Metrics.clientCallDuration.id ? client : server, keyOf(m.attributes))
      e.hist = { buckets: m.state.buckets, count: m.state.count, max: m.state.max }
    }
  }
  return { at, client, server }
}

/**
 * The 99th percentile of a histogram from cumulative `[upper bound, count]` buckets, in the histogram's
 * unit: linear inside the bucket holding it, clamped to `max`; `null` for an empty histogram.
 */
export const p99 = (buckets: ReadonlyArray<readonly [number, number]>, count: number, max: number): number | null => {
  if (!(count > 0)) return null
  const rank = 0.99 * count
  let lower = 0
  let below = 0
  for (const [bound, cumulative] of buckets) {
    if (cumulative >= rank && Number.isFinite(bound)) {
      const inBucket = cumulative - below
      const estimate = inBucket > 0 ? lower + (bound - lower) * ((rank - below) / inBucket) : bound
      return Number.isFinite(max) ? Math.min(estimate, max) : estimate
    }
    lower = Number.isFinite(bound) ? bound : lower
    below = cumulative
  }
  return Number.isFinite(max) ? max : lower
}

const figures = (now: Side | undefined, then: Side | undefined, span: number): CommandFigures | null => {
  if (now === undefined) return null
  const windowed = then?.hist !== undefined && now.hist !== undefined && now.hist.count > then.hist.count
  const hist = now.hist === undefined
    ? undefined
    : windowed
    ? {
      buckets: now.hist.buckets.map(([b, c], i) => [b, c - (then!.hist!.buckets[i]?.[1] ?? 0)] as const),
      count: now.hist.count - then!.hist!.count,
      max: now.hist.max
    }
    : now.hist
  const seconds = hist === undefined ? null : p99(hist.buckets, hist.count, hist.max)
  return {
    calls: now.calls,
    errors: now.errors,
    ratePerSecond: span > 0 ? Math.round(((now.calls - (then?.calls ?? 0)) / span) * 100) / 100 : null,
    p99Ms: seconds === null ? null : Math.round(seconds * 1e5) / 100
  }
}

/** The document `GET /live.json` answers. */
export interface LiveDocument {
  readonly bridge: string
  readonly generatedAt: number
  /** Seconds the rates and p99 cover (0 on the first poll). */
  readonly windowSeconds: number
  readonly services: ReadonlyArray<{
    readonly service: string
    readonly version: string
    readonly instances: ReadonlyArray<{ readonly instance: string; readonly startedAt: number; readonly uptimeMs: number }>
    readonly commands: ReadonlyArray<{
      readonly name: string
      /** This gateway's calls of the command (client side). */
      readonly client: CommandFigures | null
      /** Handling by instances in the gateway's own process, if any (serving side). */
      readonly server: CommandFigures | null
    }>
    readonly subscriptions: ReadonlyArray<{ readonly name: string; readonly delivery: string; readonly durable: boolean }>
  }>
  readonly events: ReadonlyArray<TailEvent>
  readonly note: string
}

const NOTE = "Figures are this gateway process's own metrics: calls it made (client side) for every command, " +
  "and handling (server side) only for services running in the same process. Rates and p99 cover the sliding window; " +
  "p99 is estimated from histogram buckets."

const positive = (what: string, n: number) => {
  if (!Number.isSafeInteger(n) || n < 1) throw new DefinitionError(`gateway liveView.${what} must be a positive integer, got ${n}`)
  return n
}

/**
 * Starts the live view's state for the scope's lifetime: subscribes to every event for the tail and
 * returns the Effect that builds one `/live.json` document.
 */
export const make = (
  bridge: BridgeShape,
  services: ReadonlyArray<Service.Any>,
  options: LiveViewOptions
): Effect.Effect<Effect.Effect<LiveDocument, BridgeError>, BridgeError, Scope.Scope> =>
  Effect.gen(function*() {
    const capacity = positive("recentEvents", options.recentEvents ?? 50)
    const discoveryWindow = Duration.fromInputUnsafe(options.discoveryWindow ?? "300 millis")
    const refreshMs = Duration.toMillis(Duration.fromInputUnsafe(options.refresh ?? "2 seconds"))
    const windowMs = Duration.toMillis(Duration.fromInputUnsafe(options.rateWindow ?? "30 seconds"))
    const tail: Array<TailEvent> = []
    yield* bridge.subscribe({
      service: "herald-gateway",
      version: "0",
      instance: Runtime.newId(),
      subscription: "live-view",
      delivery: "broadcast",
      durable: false
    }, (message) =>
      Effect.sync(() => {
        const decoded = Codec.json.decode(message.bytes)
        if (Result.isFailure(decoded)) return
        const env = decoded.success
        if (env.kind !== "event" || env.type.startsWith("herald.discovery.")) return
        tail.push({
          id: env.id,
          name: env.type,
          sender: env.sender,
          time: env.time,
          ...(env.tenantId === undefined ? {} : { tenantId: env.tenantId }),
          ...(options.payloads === true ? { data: env.data } : {})
        })
        if (tail.length > capacity) tail.splice(0, tail.length - capacity)
      }))

    const lock = yield* Semaphore.make(1)
    let listed: { at: number; instances: ReadonlyArray<Discovery.ServiceInstance> } | undefined
    const samples: Array<Sample> = []
    const instances = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      listed !== undefined && now - listed.at < refreshMs
        ? Effect.succeed(listed.instances)
        : Discovery.list({ within: discoveryWindow }).pipe(
          Effect.provideService(Bridge, bridge),
          Effect.tap((found) => Effect.sync(() => (listed = { at: now, instances: found })))
        ))

    return lock.withPermits(1)(Effect.gen(function*() {
      const live = yield* instances
      const now = yield* Clock.currentTimeMillis
      const current = sample(now, yield* Metric.snapshot)
      samples.push(current)
      while (samples.length > 1 && now - samples[0]!.at > windowMs) samples.shift()
      const oldest = samples[0]!
      const span = (now - oldest.at) / 1000
      const byService = new Map<string, { service: string; version: string; commands: Array<string>; subs: Array<Discovery.SubscriptionInfo>; instances: Array<Discovery.ServiceInstance> }>()
      const group = (service: string, version: string) => {
        const key = `${service}/${version}`
        let g = byService.get(key)
        if (g === undefined) byService.set(key, g = { service, version, commands: [], subs: [], instances: [] })
        return g
      }
      for (const s of services) {
        const g = group(s.name, s.version)
        for (const c of s.commands) if (!g.commands.includes(c.name)) g.commands.push(c.name)
      }
      for (const i of live) {
        const g = group(i.service, i.version)
        g.instances.push(i)
        for (const c of i.commands) if (!g.commands.includes(c.name)) g.commands.push(c.name)
        for (const s of i.subscriptions) if (!g.subs.some((x) => x.name === s.name)) g.subs.push(s)
      }
      const older = oldest === current ? undefined : oldest
      return {
        bridge: bridge.name,
        generatedAt: now,
        windowSeconds: span,
        services: [...byService.values()].sort((a, b) => a.service.localeCompare(b.service) || a.version.localeCompare(b.version)).map((g) => ({
          service: g.service,
          version: g.version,
          instances: g.instances.map((i) => ({ instance: i.instance, startedAt: i.startedAt, uptimeMs: Duration.toMillis(i.uptime) })),
          commands: g.commands.map((name) => {
            const key = `${g.service}/${g.version}/${name}`
            return {
              name,
              client: figures(current.client.get(key), older?.client.get(key), span),
              server: figures(current.server.get(key), older?.server.get(key), span)
            }
          }),
          subscriptions: g.subs.map((s) => ({ name: s.name, delivery: s.delivery, durable: s.durable }))
        })),
        events: [...tail].reverse(),
        note: NOTE
      }
    }))
  })
