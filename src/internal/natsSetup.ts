/**
 * The NATS bridge's options and what it sets up from them before serving: the client's connection
 * options (authentication, reconnection backoff) and the JetStream stream holding events.
 */
import type { JetStreamManager } from "@nats-io/jetstream"
import { JetStreamApiCodes } from "@nats-io/jetstream"
import type { Authenticator, ConnectionOptions, NatsConnection, TlsOptions } from "@nats-io/transport-node"
import { credsAuthenticator } from "@nats-io/transport-node"
import type { Duration } from "effect"
import { Effect } from "effect"
import { kitOf, millis } from "./bridgeKit.ts"
import type * as Subjects from "./natsSubjects.ts"

/** Options of the NATS bridge. Every option has a default; `NatsBridge.layer()` talks to a local server. */
export interface NatsBridgeConfig {
  /** Server URL(s), `host:port` or `nats://host:port`. Default `"127.0.0.1:4222"`. */
  readonly servers?: string | ReadonlyArray<string> | undefined
  /** Connection name shown in the server's monitoring. Default `"herald"`. */
  readonly name?: string | undefined
  /** Token authentication. */
  readonly token?: string | undefined
  /** User name for user/password authentication. */
  readonly user?: string | undefined
  /** Password for user/password authentication. */
  readonly pass?: string | undefined
  /** A custom authenticator, e.g. `nkeyAuthenticator(seed)` or `jwtAuthenticator(jwt, seed)`. */
  readonly authenticator?: Authenticator | undefined
  /** The contents of a NATS `.creds` file (user JWT and nkey seed). */
  readonly creds?: string | undefined
  /** TLS options passed to the client as they are (`{}` requires TLS with the system CAs). */
  readonly tls?: TlsOptions | undefined
  /**
   * First tokens of every Herald subject: letters, digits, `_` and `-`, several tokens joined by `.`
   * allowed (`acme.herald`). Default `"herald"`.
   */
  readonly subjectPrefix?: string | undefined
  /** The JetStream stream holding events. Default derived from the prefix: `herald` → `HERALD_EVENTS`. */
  readonly streamName?: string | undefined
  /** Stream limit: events older than this are removed even if unacknowledged. Default: unlimited. */
  readonly streamMaxAge?: Duration.Input | undefined
  /** Stream limit: the oldest events are removed past this many bytes. Default: unlimited. */
  readonly streamMaxBytes?: number | undefined
  /**
   * Copies of the event stream (and of its durable consumers) kept by a JetStream cluster: 1 to 5.
   * Use 3 on a cluster of 3 or more servers so durable events survive the loss of one of them.
   * Default 1 (what a single server supports). An existing stream is updated to this value.
   */
  readonly streamReplicas?: number | undefined
  /** Bound of one broker operation: connect, flush, JetStream API call, publish acknowledgement. Default 5 s. */
  readonly timeout?: Duration.Input | undefined
  /** First wait before reconnecting; doubles on every failed attempt up to `reconnectMaxWait`. Default 250 ms. */
  readonly reconnectTimeWait?: Duration.Input | undefined
  /** Longest wait between reconnection attempts. Default 5 s. */
  readonly reconnectMaxWait?: Duration.Input | undefined
  /** Reconnection attempts per server before giving up; `-1` (the default) reconnects forever. */
  readonly maxReconnectAttempts?: number | undefined
  /** Durable subscriptions: how long a delivered event may stay unacknowledged before redelivery. Default 30 s. */
  readonly ackWait?: Duration.Input | undefined
  /** Durable subscriptions: unacknowledged events in flight per consumer (backpressure). Default 256. */
  readonly maxAckPending?: number | undefined
  /** Durable `broadcast` subscriptions: an instance's consumer is deleted after this long without it. Default 10 min. */
  readonly broadcastInactiveThreshold?: Duration.Input | undefined
  /** How long closing waits for subscriptions and the connection to drain. Default 5 s. */
  readonly drainTimeout?: Duration.Input | undefined
}

/** The name of the NATS bridge, as it appears in its errors. */
export const BRIDGE = "nats"

/** The NATS bridge's errors and bounded broker calls. */
export const { attempt, bridgeError, fail, within } = kitOf(BRIDGE)
/** The `code` of a client error (JetStream API errors carry one). */
export const codeOf = (e: unknown): unknown => (e as { readonly code?: unknown } | undefined)?.code

/** The client's connection options, and the servers as one string for messages. */
export const connectionOptions = (config: NatsBridgeConfig, timeoutMs: number, connection: () => NatsConnection | undefined) => {
  const base = millis(config.reconnectTimeWait, "250 millis")
  const max = millis(config.reconnectMaxWait, "5 seconds")
  const authenticators: Array<Authenticator> = []
  if (config.authenticator !== undefined) authenticators.push(config.authenticator)
  if (config.creds !== undefined) authenticators.push(credsAuthenticator(new TextEncoder().encode(config.creds)))
  const servers = config.servers ?? "127.0.0.1:4222"
  const options: ConnectionOptions = {
    servers: typeof servers === "string" ? servers : [...servers],
    name: config.name ?? "herald",
    timeout: timeoutMs,
    maxReconnectAttempts: config.maxReconnectAttempts ?? -1,
    // exponential backoff over the failed attempts to the server pool, plus up to 100 ms of jitter
    reconnectDelayHandler: () => {
      const failures = (connection()?.getServers() ?? []).map((s) => s.reconnects)
      const n = failures.length === 0 ? 0 : Math.min(...failures, 16)
      return Math.min(base * 2 ** n, max) + Math.floor(Math.random() * 100)
    },
    ...(config.token !== undefined ? { token: config.token } : {}),
    ...(config.user !== undefined ? { user: config.user } : {}),
    ...(config.pass !== undefined ? { pass: config.pass } : {}),
    ...(authenticators.length > 0 ? { authenticator: authenticators } : {}),
    ...(config.tls !== undefined ? { tls: config.tls } : {})
  }
  return { options, servers: typeof servers === "string" ? servers : servers.join(", ") }
}

/** Creates the event stream, or checks and updates it when it exists. */
export const ensureStream = (jsm: JetStreamManager, wanted: ReturnType<typeof Subjects.streamConfig>) =>
  Effect.gen(function*() {
    const { name } = wanted
    const existing = yield* Effect.tryPromise({ try: () => jsm.streams.info(name), catch: (e) => e }).pipe(Effect.catch((e) =>
      codeOf(e) === JetStreamApiCodes.StreamNotFound
        ? Effect.succeed(undefined)
        : Effect.fail(bridgeError(`read stream ${name}`, e))
    ))
    if (existing === undefined) return yield* attempt(`create stream ${name}`, () => jsm.streams.add(wanted))
    const cfg = existing.config
    if (cfg.retention !== wanted.retention) {
      return yield* fail(
        `stream ${name} exists with ${cfg.retention} retention; Herald needs interest retention (choose another streamName)`
      )
    }
    const subject = wanted.subjects[0]!
    if (
      !cfg.subjects.includes(subject) || cfg.max_age !== wanted.max_age || cfg.max_bytes !== wanted.max_bytes ||
      cfg.num_replicas !== wanted.num_replicas
    ) {
      const subjects = cfg.subjects.includes(subject) ? cfg.subjects : [...cfg.subjects, subject]
      return yield* attempt(`update stream ${name}`, () =>
        jsm.streams.update(name, { subjects, max_age: wanted.max_age, max_bytes: wanted.max_bytes, num_replicas: wanted.num_replicas }))
    }
    return existing
  })
