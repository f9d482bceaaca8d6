/**
 * `mqtt-floor`: what no implementation of Herald's design over MQTT can do without, measured with
 * the raw baseline's own client code (`mqttSystem` in `mqtt-raw.ts`): Herald's envelopes encoded and
 * decoded by its codec, the contracts' schemas at both ends, the bridge's message properties, events
 * published with QoS 1 and confirmed, shared subscriptions with identifiers. No Effect runtime,
 * no metrics. `mqtt-floor / mqtt-raw` bounds what `herald-mqtt / mqtt-raw` can reach.
 */
import { heraldEnvelopes } from "../lib/payloads.ts"
import { mqttSystem } from "./mqtt-raw.ts"

export const system = mqttSystem({ payloads: heraldEnvelopes, design: true })
