/**
 * `herald-mqtt`: Herald on the MQTT bridge (`MqttBridge.layer`). Each role (calculator, caller,
 * publisher, each subscriber) builds its own bridge, so it has its own MQTT connection (the bridge
 * sets TCP_NODELAY itself). A fixed topic prefix keeps the benchmark apart from tests running on
 * the same broker.
 */
import { MqttBridge } from "../../src/index.ts"
import { heraldSystem } from "../lib/herald.ts"

/** The local Mosquitto the benchmark runs against. */
export const MQTT_URL = "mqtt://127.0.0.1:1883"

/** The Herald-on-MQTT system: one bridge (one connection) per role. */
export const system = heraldSystem({
  shared: false,
  bridge: (role) => MqttBridge.layer({ url: MQTT_URL, clientIdPrefix: `herald-bench-${role}`, topicPrefix: "heraldbench" })
})
