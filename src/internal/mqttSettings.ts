/**
 * The MQTT bridge's options and the settings it derives from them: defaults applied, durations in
 * milliseconds or seconds, names checked before anything connects.
 */
import type { Duration } from "effect"
import { Effect } from "effect"
import type { IClientOptions } from "mqtt"
import { kitOf, millis } from "./bridgeKit.ts"
import * as Topics from "./mqttTopics.ts"

/** TLS options passed to the client as they are; use them with an `mqtts://` URL. */
export interface MqttTlsOptions {
  /** Trusted CA certificates (PEM). Default: Node's bundled CAs. */
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer> | undefined
  /** Client certificate chain (PEM), for mutual TLS. */
  readonly cert?: string | Buffer | ReadonlyArray<string | Buffer> | undefined
  /** Client private key (PEM), for mutual TLS. */
  readonly key?: string | Buffer | ReadonlyArray<string | Buffer> | undefined
  /** Refuse a server whose certificate does not verify. Default `true`. */
  readonly rejectUnauthorized?: boolean | undefined
  /** Server name for SNI and the certificate check. Default: the URL's host. */
  readonly servername?: string | undefined
  /** ALPN protocols to offer. */
  readonly ALPNProtocols?: ReadonlyArray<string> | undefined
}

/** Options of the MQTT bridge. Every option has a default; `MqttBridge.layer()` talks to a local broker. */
export interface MqttBridgeConfig {
  /** Broker URL: `mqtt://`, `mqtts://`, `ws://` or `wss://`. Default `"mqtt://127.0.0.1:1883"`. */
  readonly url?: string | undefined
  /** First part of the bridge's client id, `<clientIdPrefix>-<random>`: letters, digits, `_`, `-`. Default `"herald"`. */
  readonly clientIdPrefix?: string | undefined
  /** User name for authentication. */
  readonly username?: string | undefined
  /** Password for authentication. */
  readonly password?: string | undefined
  /** TLS options (CA, client certificate, SNI…). */
  readonly tls?: MqttTlsOptions | undefined
  /**
   * First levels of every Herald topic: letters, digits, `_` and `-`, several levels joined by `/`
   * allowed (`acme/herald`). Default `"herald"`.
   */
  readonly topicPrefix?: string | undefined
  /** QoS of commands and replies. Default 0: a call is bounded by its deadline anyway. */
  readonly commandQos?: 0 | 1 | undefined
  /** QoS of non-durable subscriptions (events are always published with QoS 1). Default 0. */
  readonly eventQos?: 0 | 1 | undefined
  /** Durable `shared` subscriptions: how long the broker keeps a session while no instance holds it. Default 7 days. */
  readonly sessionExpiry?: Duration.Input | undefined
  /** Durable `broadcast` subscriptions: how long an instance's session outlives a crash of the instance. Default 10 min. */
  readonly broadcastSessionExpiry?: Duration.Input | undefined
  /** Bound of one broker operation: connect, subscribe, publish acknowledgement. Default 5 s. */
  readonly timeout?: Duration.Input | undefined
  /** Wait between reconnection attempts. Default 1 s. */
  readonly reconnectPeriod?: Duration.Input | undefined
  /** MQTT keep-alive: a silent broker is declared lost after 1.5 times this. Default 30 s. */
  readonly keepalive?: Duration.Input | undefined
  /** How often presence and lease messages are refreshed; they expire after three intervals. Default 10 s. */
  readonly presenceInterval?: Duration.Input | undefined
  /** Durable subscriptions: unacknowledged events in flight per session (MQTT Receive Maximum). Default 256. */
  readonly maxInflight?: number | undefined
  /** How long closing a durable subscription waits for running handlers to acknowledge. Default 5 s. */
  readonly drainTimeout?: Duration.Input | undefined
}

/** The name of the MQTT bridge, as it appears in its errors. */
export const BRIDGE = "mqtt"

/** The MQTT bridge's errors and bounded broker calls. */
export const { bridgeError, fail, within } = kitOf(BRIDGE)

/** The bridge's settings, or a `BridgeError` naming the option that cannot be used. */
export const settingsOf = (config: MqttBridgeConfig) =>
  Effect.suspend(() => {
    const prefix = config.topicPrefix ?? "herald"
    if (!Topics.isLevels(prefix)) {
      return Effect.fail(fail(`topicPrefix ${JSON.stringify(prefix)} is not MQTT levels ([A-Za-z0-9_-] joined by '/')`))
    }
    const clientIdPrefix = config.clientIdPrefix ?? "herald"
    if (!Topics.isLevel(clientIdPrefix)) {
      return Effect.fail(fail(`clientIdPrefix ${JSON.stringify(clientIdPrefix)} may only hold [A-Za-z0-9_-]`))
    }
    const presenceMs = millis(config.presenceInterval, "10 seconds")
    return Effect.succeed({
      url: config.url ?? "mqtt://127.0.0.1:1883",
      prefix,
      clientIdPrefix,
      commandQos: config.commandQos ?? 0,
      eventQos: config.eventQos ?? 0,
      sessionExpiry: Math.ceil(millis(config.sessionExpiry, "7 days") / 1000),
      broadcastExpiry: Math.ceil(millis(config.broadcastSessionExpiry, "10 minutes") / 1000),
      timeoutMs: millis(config.timeout, "5 seconds"),
      reconnectMs: millis(config.reconnectPeriod, "1 second"),
      presenceMs,
      ttl: Math.ceil((3 * presenceMs) / 1000),
      maxInflight: config.maxInflight ?? 256,
      drainMs: millis(config.drainTimeout, "5 seconds"),
      base: {
        protocolVersion: 5,
        resubscribe: false,
        // mqtt.js calls its debug logger about ten times per packet; Herald logs through Effect instead
        log: () => {},
        connectTimeout: millis(config.timeout, "5 seconds"),
        keepalive: Math.max(1, Math.round(millis(config.keepalive, "30 seconds") / 1000)),
        ...(config.username !== undefined ? { username: config.username } : {}),
        ...(config.password !== undefined ? { password: config.password } : {}),
        ...(config.tls !== undefined ? (config.tls as unknown as IClientOptions) : {})
      } satisfies IClientOptions
    })
  })
