/**
 * The registry of systems: metadata only (the parent process never loads a client library).
 * To add a system, write `bench/systems/<id>.ts` exporting `system: SystemModule` and add one
 * entry here; Herald systems name their raw baseline for the ratio column (and get a memory run).
 * Floor systems (`floor: true`) also name it, but measure the design rather than Herald: they run
 * only when asked for (`--floors`, or by name).
 * Raw baselines are the honest ceiling: the idiomatic client, with TCP_NODELAY set where the client
 * allows it (nats.js sets it itself; for mqtt.js and amqplib set it on the socket).
 */
import type { SystemInfo } from "../lib/types.ts"

const NATS = { name: "NATS", host: "127.0.0.1", port: 4222 } as const
const MOSQUITTO = { name: "Mosquitto", host: "127.0.0.1", port: 1883 } as const
const AMQP = { name: "RabbitMQ", host: "127.0.0.1", port: 5672 } as const

export const SYSTEMS: ReadonlyArray<SystemInfo> = [
  { id: "direct", file: "direct.ts", description: "plain await add() and an EventEmitter with 4 listeners" },
  { id: "herald-memory", file: "herald-memory.ts", description: "Herald on the memory bridge", baseline: "direct" },
  { id: "nats-raw", file: "nats-raw.ts", description: "@nats-io/transport-node request/reply and pub/sub", broker: NATS },
  { id: "herald-nats", file: "herald-nats.ts", description: "Herald on the NATS bridge", baseline: "nats-raw", broker: NATS },
  {
    id: "mqtt-raw",
    file: "mqtt-raw.ts",
    description: "mqtt.js 5 request/response (response topic + correlation data) and pub/sub, QoS 0",
    broker: MOSQUITTO
  },
  {
    id: "mqtt-floor",
    file: "mqtt-floor.ts",
    description: "mqtt-raw's client code doing only what Herald's design requires: envelopes, codec, schemas, the bridge's QoS and properties",
    baseline: "mqtt-raw",
    floor: true,
    broker: MOSQUITTO
  },
  { id: "herald-mqtt", file: "herald-mqtt.ts", description: "Herald on the MQTT bridge", baseline: "mqtt-raw", broker: MOSQUITTO },
  { id: "amqp-raw", file: "amqp-raw.ts", description: "amqplib direct reply-to RPC and a fanout exchange", broker: AMQP },
  {
    id: "amqp-floor",
    file: "amqp-floor.ts",
    description: "amqp-raw's client code doing only what Herald's design requires: envelopes, codec, schemas, confirms, persistence",
    baseline: "amqp-raw",
    floor: true,
    broker: AMQP
  },
  { id: "herald-amqp", file: "herald-amqp.ts", description: "Herald on the AMQP bridge", baseline: "amqp-raw", broker: AMQP }
]

export const systemById = (id: string): SystemInfo | undefined => SYSTEMS.find((s) => s.id === id)
