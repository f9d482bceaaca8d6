/**
 * Every metric Herald records, in one place.
 *
 * Names follow Prometheus conventions (`_total` counters, `_seconds` durations). The runtime builds
 * the attributed series of a command or a subscription once, when its handler is constructed, so
 * the per-message cost is one registry lookup per update. Read them with `Metric.snapshot`, the
 * gateway's `GET /metrics`, or an OTLP exporter (`Observability.layer`).
 */
import { type Context, Metric } from "effect"

// Effect's `Metric.withAttributes` derives its series key again on every update (a sort and a
// JSON.stringify), which costs more than the update itself on the per-message path. Herald's
// series are metrics of their own instead, made once with their attributes by the same definition.
const makers = new Map<string, (attributes: Metric.Metric.AttributeSet) => Metric.Metric<any, any>>()

const define = <M extends Metric.Metric<any, any>>(make: (attributes: Metric.Metric.AttributeSet | undefined) => M): M => {
  const metric = make(undefined)
  makers.set(metric.id, make)
  return metric
}

/**
 * The series of one of Herald's metrics with fixed attributes, made once and updated per message
 * (the same series `Metric.withAttributes` names, without re-deriving its key on every update).
 */
export const series = <M extends Metric.Metric<any, any>>(metric: M, attributes: Metric.Metric.AttributeSet): M =>
  makers.get(metric.id)!(attributes) as M

/** Latency buckets in seconds, from 0.5 ms to 10 s. */
export const LATENCY_BOUNDARIES: ReadonlyArray<number> = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
]

// ---------------------------------------------------------------------------------------------
// serving side
// ---------------------------------------------------------------------------------------------

/**
 * Commands handled, by `service`, `version`, `command` and `outcome`: `ok`, `error` (a declared
 * error), `defect`, `invalid-input`, `timeout` (interrupted at its deadline).
 */
export const commandHandled = define((attributes) =>
  Metric.counter("herald_command_handled_total", {
    description: "Commands handled by this process, by outcome",
    incremental: true,
    attributes
  })
)

/** Handling time of commands in seconds, by `service`, `version`, `command`. */
export const commandDuration = define((attributes) =>
  Metric.histogram("herald_command_duration_seconds", {
    description: "Time from receipt of a command to its reply, in seconds",
    boundaries: LATENCY_BOUNDARIES,
    attributes
  })
)

/** Commands being handled right now, by `service`, `version`, `command`. */
export const commandInFlight = define((attributes) =>
  Metric.gauge("herald_command_in_flight", {
    description: "Commands being handled by this process right now",
    attributes
  })
)

// ---------------------------------------------------------------------------------------------
// caller side
// ---------------------------------------------------------------------------------------------

/**
 * Invocations made, by `service`, `version`, `command` and `outcome`: `ok` or the `_tag` of the
 * error the caller got (`Timeout`, `NoResponder`, `InvalidOutput`, a declared error tag, …).
 */
export const clientCalls = define((attributes) =>
  Metric.counter("herald_client_calls_total", {
    description: "Command invocations made by this process, by outcome",
    incremental: true,
    attributes
  })
)

/** Round-trip time of invocations in seconds (retries included), by `service`, `version`, `command`. */
export const clientCallDuration = define((attributes) =>
  Metric.histogram("herald_client_call_duration_seconds", {
    description: "Time from invocation to the decoded reply or error, in seconds",
    boundaries: LATENCY_BOUNDARIES,
    attributes
  })
)

// ---------------------------------------------------------------------------------------------
// events and subscriptions
// ---------------------------------------------------------------------------------------------

/** Events published, by `service` (the sender) and `event`. */
export const eventsPublished = define((attributes) =>
  Metric.counter("herald_events_published_total", {
    description: "Events published by this process",
    incremental: true,
    attributes
  })
)

/** Events a subscription handled successfully, by `service` and `subscription`. */
export const subscriptionDelivered = define((attributes) =>
  Metric.counter("herald_subscription_delivered_total", {
    description: "Events a subscription handler completed successfully",
    incremental: true,
    attributes
  })
)

/** Handler attempts that failed (each failed attempt counts), by `service` and `subscription`. */
export const subscriptionFailed = define((attributes) =>
  Metric.counter("herald_subscription_failed_total", {
    description: "Failed runs of a subscription handler (every failed attempt counts)",
    incremental: true,
    attributes
  })
)

/** Retries of a subscription handler after a failed attempt, by `service` and `subscription`. */
export const subscriptionRetried = define((attributes) =>
  Metric.counter("herald_subscription_retried_total", {
    description: "Retries of a subscription handler after a failed attempt",
    incremental: true,
    attributes
  })
)

/**
 * Age in seconds of the last event delivered to a subscription when its handler started (its
 * publish time to now), by `service` and `subscription`: how far behind the subscription runs.
 */
export const subscriptionLag = define((attributes) =>
  Metric.gauge("herald_subscription_lag_seconds", {
    description: "Age of the last event delivered to the subscription when handling started, in seconds",
    attributes
  })
)

/** Events sent to the dead-letter stream, by `service` and `subscription`. */
export const deadLetters = define((attributes) =>
  Metric.counter("herald_dead_letters_total", {
    description: "Events a subscription gave up on and published as dead letters",
    incremental: true,
    attributes
  })
)

// ---------------------------------------------------------------------------------------------
// bridges
// ---------------------------------------------------------------------------------------------

/** Messages a consumer received but could not use, by `service` and `reason` (`undecodable`, `unexpected`, `expired`). */
export const rejectedMessages = define((attributes) =>
  Metric.counter("herald_messages_rejected_total", {
    description: "Messages received but not handled: undecodable bytes, unexpected kinds, expired commands",
    incremental: true,
    attributes
  })
)

/**
 * Bridge connections of this process that are up, by `bridge` (`nats`, `mqtt`, `amqp`, `memory`):
 * 1 while the (usual single) bridge is connected to its broker, 0 while it is not.
 */
export const bridgeConnected = define((attributes) =>
  Metric.gauge("herald_bridge_connected", {
    description: "Bridge connections that are up: 1 while the bridge is connected to its broker, 0 otherwise",
    attributes
  })
)

/** Reconnections of a bridge to its broker after a lost connection, by `bridge`. */
export const bridgeReconnects = define((attributes) =>
  Metric.counter("herald_bridge_reconnects_total", {
    description: "Reconnections of a bridge after its broker connection was lost",
    incremental: true,
    attributes
  })
)

// ---------------------------------------------------------------------------------------------
// attributed series, built once per command / subscription / bridge
// ---------------------------------------------------------------------------------------------

/** Serving-side outcomes of a command. */
export type CommandOutcome = "ok" | "error" | "defect" | "invalid-input" | "timeout"

/** The series of one command on the serving side. */
export interface CommandSeries {
  readonly handled: { readonly [K in CommandOutcome]: Metric.Counter<number> }
  readonly duration: Metric.Histogram<number>
  readonly inFlight: Metric.Gauge<number>
}

/** Builds the serving-side series of one command. */
export const commandSeries = (service: string, version: string, command: string): CommandSeries => {
  const attributes = { service, version, command }
  const handled = (outcome: CommandOutcome) => series(commandHandled, { ...attributes, outcome })
  return {
    handled: {
      ok: handled("ok"),
      error: handled("error"),
      defect: handled("defect"),
      "invalid-input": handled("invalid-input"),
      timeout: handled("timeout")
    },
    duration: series(commandDuration, attributes),
    inFlight: series(commandInFlight, attributes)
  }
}

/** The series of one command on the caller side; outcome counters are made on first use and kept. */
export interface ClientSeries {
  readonly calls: (outcome: string) => Metric.Counter<number>
  readonly duration: Metric.Histogram<number>
}

/** Builds the caller-side series of one command. */
export const clientSeries = (service: string, version: string, command: string): ClientSeries => {
  const attributes = { service, version, command }
  const byOutcome = new Map<string, Metric.Counter<number>>()
  return {
    calls: (outcome) => {
      let counter = byOutcome.get(outcome)
      if (counter === undefined) {
        counter = series(clientCalls, { ...attributes, outcome })
        byOutcome.set(outcome, counter)
      }
      return counter
    },
    duration: series(clientCallDuration, attributes)
  }
}

/** The series of one subscription. */
export interface SubscriptionSeries {
  readonly delivered: Metric.Counter<number>
  readonly failed: Metric.Counter<number>
  readonly retried: Metric.Counter<number>
  readonly deadLetters: Metric.Counter<number>
  readonly lag: Metric.Gauge<number>
}

/** Builds the series of one subscription. */
export const subscriptionSeries = (service: string, subscription: string): SubscriptionSeries => {
  const attributes = { service, subscription }
  return {
    delivered: series(subscriptionDelivered, attributes),
    failed: series(subscriptionFailed, attributes),
    retried: series(subscriptionRetried, attributes),
    deadLetters: series(deadLetters, attributes),
    lag: series(subscriptionLag, attributes)
  }
}

/** The series of one bridge. */
export interface BridgeSeries {
  readonly connected: Metric.Gauge<number>
  readonly reconnects: Metric.Counter<number>
}

/** Builds the series of one bridge kind (`nats`, `mqtt`, `amqp`, `memory`). */
export const bridgeSeries = (bridge: string): BridgeSeries => ({
  connected: series(bridgeConnected, { bridge }),
  reconnects: series(bridgeReconnects, { bridge })
})

/** Keeps `herald_bridge_connected` and `herald_bridge_reconnects_total` of one bridge connection. */
export interface ConnectionTracker {
  /** The connection is up; after a loss this counts a reconnect (idempotent while up). */
  readonly connected: () => void
  /** The connection is down or closed (idempotent). */
  readonly disconnected: () => void
}

/**
 * Tracks one connection of a bridge: it adds 1 to `herald_bridge_connected{bridge}` while up, so
 * several bridges of one kind in a process add up, and counts reconnections. `context` is the
 * bridge's context (for the metric registry), captured once when the bridge is built.
 */
export const connectionTracker = (bridge: string, context: Context.Context<never>): ConnectionTracker => {
  const series = bridgeSeries(bridge)
  let up = false
  let wasUp = false
  return {
    connected: () => {
      if (up) return
      if (wasUp) series.reconnects.updateUnsafe(1, context)
      up = true
      wasUp = true
      series.connected.modifyUnsafe(1, context)
    },
    disconnected: () => {
      if (!up) return
      up = false
      series.connected.modifyUnsafe(-1, context)
    }
  }
}
