/**
 * Names used in subjects, topics and queues cannot inject wildcards or routing: service, command,
 * subscription and event names are either rejected when the contract is defined or are safe to use
 * verbatim; tenant ids (free text from callers) are encoded into exactly one subject token, topic
 * level or routing-key word, and a subscription's broker pre-filter for one tenant never admits
 * another tenant's event.
 */
import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import * as fc from "fast-check"
import { Command, DefinitionError, Event, Service, Subscription } from "../src/index.ts"
import * as AmqpNames from "../src/internal/amqpNames.ts"
import * as MqttTopics from "../src/internal/mqttTopics.ts"
import * as NatsSubjects from "../src/internal/natsSubjects.ts"
import { amqpMatches, mqttMatches, natsMatches } from "./wireMatching.ts"

/** Characters that mean something to a broker, mixed with ordinary ones. */
const hostileChar = fc.constantFrom(".", "*", ">", "/", "+", "#", "$", " ", "\t", "\n", "\u0000", "~", "_", "é", "😀", "a", "b", "1", "-")
const hostileName = fc.oneof(
  fc.constant(""),
  fc.string({ unit: hostileChar, maxLength: 12 }),
  fc.string({ unit: hostileChar, minLength: 60, maxLength: 70 }),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: "grapheme", maxLength: 8 })
)

const NAME = /^[a-z][a-z0-9-]{0,62}$/
const EVENT_NAME = /^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$/

/** Whether defining with `name` throws a `DefinitionError` (any other exception fails the test). */
const rejected = (define: () => unknown): boolean => {
  try {
    define()
    return false
  } catch (e) {
    assert.instanceOf(e, DefinitionError)
    return true
  }
}

const Empty = Schema.Struct({})

describe("name injection", () => {
  it("service, command and subscription names are rejected at definition unless safe verbatim", () => {
    fc.assert(
      fc.property(hostileName, (name) => {
        const safe = NAME.test(name)
        assert.strictEqual(rejected(() => Service.make(name, "1", {})), !safe, `service ${JSON.stringify(name)}`)
        assert.strictEqual(rejected(() => Command.make(name, { input: Empty, output: Empty })), !safe)
        assert.strictEqual(
          rejected(() => Subscription.make(name, { filter: {}, payload: Empty, delivery: "shared" })),
          !safe
        )
        if (safe) {
          const address = { service: name, version: "1", command: name }
          assert.lengthOf(NatsSubjects.commandSubject("herald", address).split("."), 5)
          assert.lengthOf(MqttTopics.commandTopic("herald", address).split("/"), 5)
          assert.lengthOf(AmqpNames.commandQueue("herald", address).split("."), 5)
        }
      }),
      { numRuns: 1_000 }
    )
  })

  it("event names are rejected at definition unless dot-separated safe segments", () => {
    fc.assert(
      fc.property(hostileName, (name) => {
        const safe = name.length <= 127 && EVENT_NAME.test(name)
        assert.strictEqual(rejected(() => Event.make(name, Empty)), !safe, `event ${JSON.stringify(name)}`)
        assert.strictEqual(rejected(() => Command.make("c", { input: Empty, output: Empty, emits: name })), !safe)
      }),
      { numRuns: 1_000 }
    )
  })

  it("a tenant id becomes exactly one token, level or word, free of wildcards, and distinct tenants stay distinct", () => {
    fc.assert(
      fc.property(hostileName, hostileName, (a, b) => {
        const route = (tenantId: string) => ({ id: "x", eventName: "order.placed", senderService: "shop", tenantId })
        const nats = NatsSubjects.eventSubject("herald", route(a))!
        assert.lengthOf(nats.split("."), 6)
        assert.notMatch(nats, /[*>\s]/)
        const mqtt = MqttTopics.eventTopic("herald", route(a))!
        assert.lengthOf(mqtt.split("/"), 6)
        assert.notMatch(mqtt, /[+#]|\/\$/)
        const amqp = AmqpNames.routingKey(route(a))!
        assert.lengthOf(amqp.split("."), 4)
        assert.notMatch(amqp, /[*#]/)
        if (a !== b) {
          assert.notStrictEqual(NatsSubjects.encodeTenant(a), NatsSubjects.encodeTenant(b))
          assert.notStrictEqual(MqttTopics.encodeTenant(a), MqttTopics.encodeTenant(b))
          assert.notStrictEqual(AmqpNames.encodeTenant(a), AmqpNames.encodeTenant(b))
        }
      }),
      { numRuns: 1_000 }
    )
  })

  it("a subscription's broker pre-filter for tenant T admits T's events and no other tenant's, on every broker", () => {
    fc.assert(
      fc.property(hostileName, hostileName, (mine, other) => {
        fc.pre(mine !== other)
        const spec = { eventNames: ["order.placed"], tenantIds: [mine] }
        const route = (tenantId: string) => ({ id: "x", eventName: "order.placed", senderService: "shop", tenantId })
        const nats = NatsSubjects.filterSubjects("herald", spec)
        const mqtt = MqttTopics.filterTopics("herald", spec)
        const amqp = AmqpNames.bindingKeys(spec)
        const admits = (tenant: string) => ({
          nats: nats.some((f) => natsMatches(f, NatsSubjects.eventSubject("herald", route(tenant))!)),
          mqtt: mqtt.some((f) => mqttMatches(f, MqttTopics.eventTopic("herald", route(tenant))!)),
          amqp: amqp.some((f) => amqpMatches(f, AmqpNames.routingKey(route(tenant))!))
        })
        assert.deepStrictEqual(admits(mine), { nats: true, mqtt: true, amqp: true })
        assert.deepStrictEqual(admits(other), { nats: false, mqtt: false, amqp: false })
      }),
      { numRuns: 1_000 }
    )
  })
})
