/**
 * MQTT-specific tests of the MQTT bridge, against a real Mosquitto on 127.0.0.1:1883. The
 * behavioural conformance suite (BridgeSuite) runs at the end; this file covers durability, wire
 * interop with `mosquitto_rr` and a plain MQTT client, bad input on the wire, fast `NoResponder`,
 * and a broker restart under load.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Layer, Queue, Ref, Schedule, Scope } from "effect"
import { execFile, execFileSync } from "node:child_process"
import { readdirSync, readFileSync, readlinkSync } from "node:fs"
import { createConnection } from "node:net"
import * as fc from "fast-check"
import { connect, type MqttClient } from "mqtt"
import * as MqttBridge from "../../src/bridges/Mqtt.ts"
import * as Topics from "../../src/internal/mqttTopics.ts"
import * as BridgeSuite from "../../src/testing/BridgeSuite.ts"
import { deadLetterWatcher } from "../../src/testing/robustness.ts"
import { Bridge, Client, Event, Service, Subscription } from "../../src/index.ts"
import { Added, Calculator, CalculatorLive } from "../fixtures.ts"
import {
  badBytes,
  commandBytes,
  durableKeeper,
  eventSub,
  eventually,
  handWritten,
  health,
  outcomeOf,
  preFilterRouting,
  redeliveryAfterInterruptedShutdown,
  servingCalculator,
  takeN
} from "./support.ts"
import { anyString, hintedEvent, mqttMatches } from "../wireMatching.ts"
import { brokerFault } from "./faults.ts"

const HOST = "127.0.0.1"
const PORT = 1883
const URL = `mqtt://${HOST}:${PORT}`
/** A fresh topic prefix and client id prefix per run, so leftovers of other runs never interfere. */
const run = crypto.randomUUID().replaceAll("-", "").slice(0, 10)
const prefix = `ht${run}`
const clientIdPrefix = `hc${run}`
/** Short-lived durable sessions: the broker forgets them soon after the run. */
const mqttLayer = (extra: MqttBridge.MqttBridgeConfig = {}) =>
  MqttBridge.layer({ topicPrefix: prefix, clientIdPrefix, sessionExpiry: "2 minutes", ...extra })

const decoder = new TextDecoder()
const json = (data: Uint8Array | string): Record<string, unknown> =>
  JSON.parse(typeof data === "string" ? data : decoder.decode(data)) as Record<string, unknown>

/** A plain MQTT 5 connection, as a program without Herald would use. */
const rawClient = Effect.acquireRelease(
  Effect.promise(() => new Promise<MqttClient>((resolve, reject) => {
    const c = connect(URL, { protocolVersion: 5, clientId: `${clientIdPrefix}-raw-${crypto.randomUUID().slice(0, 8)}`, reconnectPeriod: 0 })
    c.once("connect", () => resolve(c))
    c.once("error", reject)
  })),
  (c) => Effect.promise(() => c.endAsync())
)

/** Runs a command line tool and returns its standard output. */
const runTool = (file: string, args: ReadonlyArray<string>) =>
  Effect.callback<string, Error>((resume) => {
    execFile(file, [...args], { timeout: 10_000 }, (error, stdout, stderr) =>
      resume(error ? Effect.fail(new Error(`${file} failed: ${error.message} ${stderr}`)) : Effect.succeed(stdout)))
  })

// ---------------------------------------------------------------------------------------------
// stopping and starting the local Mosquitto, exactly as it was started
// ---------------------------------------------------------------------------------------------

interface BrokerProcess {
  readonly pid: number | undefined
  readonly exe: string
  readonly args: ReadonlyArray<string>
}

/** The running Mosquitto's pid, executable and arguments, read from /proc, or undefined when there is none. */
function findBroker(): BrokerProcess | undefined {
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const exe = readlinkSync(`/proc/${pid}/exe`)
      if (!exe.endsWith("/mosquitto")) continue
      const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((a) => a !== "").slice(1)
      return { pid: Number(pid), exe, args: args.includes("-d") ? args : ["-d", ...args] }
    } catch {
      // the process ended or is not ours to read
    }
  }
  return undefined
}
/** How to start the broker again: as the running one was started, or as `.ci/run` starts it. */
const broker: BrokerProcess = findBroker() ??
  { pid: undefined, exe: "mosquitto", args: ["-d", "-c", "/etc/mosquitto/mosquitto.conf"] }

const portOpen = () =>
  new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: HOST, port: PORT })
    socket.once("connect", () => (socket.destroy(), resolve(true)))
    socket.once("error", () => (socket.destroy(), resolve(false)))
  })

const waitPort = async (open: boolean) => {
  for (let i = 0; i < 200; i++) {
    if ((await portOpen()) === open) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`port ${PORT} did not become ${open ? "open" : "closed"}`)
}

/** Stops the running broker by its pid (SIGTERM: Mosquitto saves its persistence file on the way out). */
async function stopBroker() {
  const running = findBroker()
  if (running?.pid !== undefined) process.kill(running.pid, "SIGTERM")
  await waitPort(false)
}

async function startBroker() {
  if (await portOpen()) return
  execFileSync(broker.exe, [...broker.args])
  await waitPort(true)
}

describe("MqttBridge", () => {
  it.live("rejects a bad prefix and an unreachable broker at build, without hanging", () =>
    Effect.gen(function*() {
      for (const topicPrefix of ["bad prefix", "a/+/b", "a/#", "$SYS", "a//b", ""]) {
        const bad = yield* Effect.flip(Layer.build(MqttBridge.layer({ topicPrefix })))
        assert.match(bad.message, /topicPrefix/)
      }
      const badId = yield* Effect.flip(Layer.build(MqttBridge.layer({ clientIdPrefix: "a/b" })))
      assert.match(badId.message, /clientIdPrefix/)
      const start = yield* Clock.currentTimeMillis
      const down = yield* Effect.flip(Layer.build(MqttBridge.layer({ url: "mqtt://127.0.0.1:1", timeout: "1 second" })))
      assert.strictEqual(down._tag, "BridgeError")
      assert.match(down.message, /cannot connect to mqtt:\/\/127\.0\.0\.1:1/)
      assert.isBelow((yield* Clock.currentTimeMillis) - start, 2_500)
    }))

  it.live("NoResponder comes at once from another bridge, both before a service starts and after it stops", () =>
    Effect.gen(function*() {
      const Lonely = Service.make("lonely", "1", { commands: [Calculator.commands[0]] })
      const calling = yield* Layer.build(mqttLayer())
      const calc = yield* Client.make(Lonely, { timeout: "10 seconds" }).pipe(Effect.provide(calling))
      const timed = Effect.gen(function*() {
        const start = yield* Clock.currentTimeMillis
        const exit = yield* Effect.exit(calc.add({ a: 1, b: 2 }))
        return { outcome: outcomeOf(exit), elapsed: (yield* Clock.currentTimeMillis) - start }
      })
      const before = yield* timed
      assert.strictEqual(before.outcome, "NoResponder")
      assert.isBelow(before.elapsed, 1_000)

      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(
        Service.toLayer(Lonely, { add: ({ a, b }) => Effect.succeed({ sum: a + b }) }).pipe(Layer.provide(mqttLayer())),
        scope
      )
      // the other bridge's presence reaches the caller through the broker: no waiting needed
      assert.strictEqual((yield* timed).outcome, "ok")
      yield* Scope.close(scope, Exit.void)
      // the stopped service's presence is cleared at once, but reaches the caller one broker hop later
      yield* Effect.sleep("200 millis")
      const after = yield* timed
      assert.strictEqual(after.outcome, "NoResponder")
      assert.isBelow(after.elapsed, 1_000)
      assert.strictEqual(yield* Bridge.Bridge.use((b) => b.pendingRequests).pipe(Effect.provide(calling)), 0)
    }))

  it.live("a durable subscription gets the events published while its service was down, and acks them", () =>
    Effect.gen(function*() {
      const { got, publish, start } = yield* durableKeeper(mqttLayer)
      const first = yield* start
      yield* publish(0)
      assert.deepStrictEqual((yield* takeN(got, 1)).map((d) => d.sum), [0])
      yield* Scope.close(first, Exit.void)

      for (const sum of [1, 2, 3, 4, 5]) yield* publish(sum)
      yield* Effect.sleep("200 millis")
      assert.strictEqual(yield* Queue.size(got), 0, "nobody is subscribed")

      const second = yield* start
      const kept = yield* takeN(got, 5)
      assert.deepStrictEqual(kept.map((d) => d.sum).sort(), [1, 2, 3, 4, 5])
      assert.isTrue(kept.every((d) => d.deliveryCount === 1), "first deliveries")
      yield* Effect.sleep("200 millis")
      yield* Scope.close(second, Exit.void)

      // everything was acknowledged: a third start gets nothing again
      const third = yield* start
      yield* Effect.sleep("500 millis")
      assert.strictEqual(yield* Queue.size(got), 0, "acknowledged events are not redelivered")
      yield* publish(6)
      assert.deepStrictEqual((yield* takeN(got, 1)).map((d) => d.sum), [6])
      yield* Scope.close(third, Exit.void)
    }))

  it.live("a durable shared subscription is held by one instance; another takes over when it stops", () =>
    Effect.gen(function*() {
      const Tick = Event.make("relay.tick", Added)
      const Relay = Service.make("relay", "1", { subscriptions: [eventSub("ticks", "relay.tick", { durable: true })] })
      const got = yield* Queue.unbounded<{ instance: number; sum: number }>()
      const instance = (n: number) =>
        Effect.gen(function*() {
          const scope = yield* Scope.make()
          yield* Layer.buildWithScope(
            Service.toLayer(Relay, { ticks: (p) => Queue.offer(got, { instance: n, sum: p.sum }) }).pipe(Layer.provide(mqttLayer())),
            scope
          )
          return scope
        })
      const publisher = yield* Layer.build(mqttLayer())
      const publish = (sum: number) => Event.publish(Tick, { sum }).pipe(Effect.provide(publisher))
      const a = yield* instance(0)
      const b = yield* instance(1)
      for (const sum of [1, 2, 3, 4]) yield* publish(sum)
      const firstRound = yield* takeN(got, 4)
      assert.deepStrictEqual(firstRound.map((d) => d.sum).sort(), [1, 2, 3, 4])
      const holder = firstRound[0]!.instance
      assert.isTrue(firstRound.every((d) => d.instance === holder), "one holder of the session")
      yield* Scope.close(holder === 0 ? a : b, Exit.void)
      for (const sum of [5, 6, 7]) yield* publish(sum)
      const secondRound = yield* takeN(got, 3)
      assert.deepStrictEqual(secondRound.map((d) => d.sum).sort(), [5, 6, 7])
      assert.isTrue(secondRound.every((d) => d.instance !== holder), "the standby took over")
      yield* Effect.sleep("300 millis")
      assert.strictEqual(yield* Queue.size(got), 0, "each event once")
      yield* Scope.close(holder === 0 ? b : a, Exit.void)
    }))

  it.live("a durable event whose handler is interrupted at shutdown is redelivered", () =>
    Effect.gen(function*() {
      const again = yield* redeliveryAfterInterruptedShutdown(mqttLayer, () => mqttLayer({ drainTimeout: "100 millis" }))
      assert.strictEqual(again.sum, 5)
      assert.strictEqual(again.deliveryCount, 2, "a redelivery carries the DUP flag")
    }))

  it.live("a durable handler that fails for good is dead-lettered once and acknowledged", () =>
    Effect.gen(function*() {
      const Grumpy = Service.make("grumpy", "1", {
        subscriptions: [eventSub("work", "grumpy.job", { durable: true, retry: Schedule.recurs(1) })]
      })
      const Dlq = deadLetterWatcher("grumpy-dlq", "grumpy")
      const attempts = yield* Ref.make(0)
      const letters = yield* Queue.unbounded<Subscription.DeadLetter>()
      yield* Effect.gen(function*() {
        yield* Event.publish(Event.make("grumpy.job", Added), { sum: 9 })
        const [letter] = yield* takeN(letters, 1)
        assert.strictEqual(letter!.attempts, 2)
        yield* Effect.sleep("1500 millis")
        assert.strictEqual(yield* Ref.get(attempts), 2, "not redelivered once dead-lettered")
        assert.strictEqual(yield* Queue.size(letters), 0)
      }).pipe(Effect.provide(Layer.mergeAll(
        Service.toLayer(Grumpy, { work: () => Effect.andThen(Ref.update(attempts, (n) => n + 1), Effect.fail("no")) }),
        Service.toLayer(Dlq, { letters: (letter) => Queue.offer(letters, letter) })
      ).pipe(Layer.provideMerge(mqttLayer()))))
    }))

  it.live("commands with invalid response topics get no reply and do not cost the service its connection", () =>
    Effect.gen(function*() {
      const serving = yield* servingCalculator(mqttLayer())
      const calling = yield* Layer.build(mqttLayer())
      const calc = yield* Client.make(Calculator, { timeout: "3 seconds" }).pipe(Effect.provide(calling))
      assert.deepStrictEqual(yield* calc.add({ a: 1, b: 1 }), { sum: 2 })
      const raw = yield* rawClient
      const command = commandBytes({ service: "calculator", version: "1", command: "add" }, { a: 1, b: 2 })
      // each of these as a reply topic is a protocol error: the broker would drop the connection that sends it
      const topic = Topics.commandTopic(prefix, { service: "calculator", version: "1", command: "add" })
      for (const responseTopic of ["a/#", "a/+/b", "#", "", "x\u0000y"]) {
        raw.publish(topic, Buffer.from(command), { qos: 0, properties: { responseTopic, correlationData: Buffer.from("c") } })
      }
      // the serving bridge stays connected while it handles them, then answers as before
      const states = new Set<string>()
      for (let i = 0; i < 60; i++) {
        states.add(yield* health(serving))
        yield* Effect.sleep("20 millis")
      }
      assert.deepStrictEqual([...states], ["connected"])
      for (let i = 0; i < 20; i++) assert.deepStrictEqual(yield* calc.add({ a: i, b: 1 }), { sum: i + 1 })
    }))

  it.live("replies echo a foreign command's correlation data byte for byte (random correlation data)", () =>
    Effect.gen(function*() {
      const serving = yield* servingCalculator(mqttLayer())
      const raw = yield* rawClient
      const responseTopic = `${prefix}/fuzz-replies/${crypto.randomUUID()}`
      let next: ((packet: { readonly payload: Buffer; readonly correlationData: Buffer | undefined }) => void) | undefined
      raw.on("message", (topic, payload, packet) => {
        if (topic === responseTopic) next?.({ payload, correlationData: packet.properties?.correlationData })
      })
      yield* Effect.promise(() => raw.subscribeAsync(responseTopic, { qos: 0 }))
      const topic = Topics.commandTopic(prefix, { service: "calculator", version: "1", command: "add" })
      let i = 0
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 300 }), async (correlation) => {
            const a = i++
            const reply = new Promise<{ readonly payload: Buffer; readonly correlationData: Buffer | undefined }>((resolve, reject) => {
              const timer = setTimeout(() => reject(new Error("no reply within 3 s")), 3000)
              next = (p) => (clearTimeout(timer), resolve(p))
            })
            raw.publish(topic, Buffer.from(commandBytes({ service: "calculator", version: "1", command: "add" }, { a, b: 1 })), {
              qos: 0,
              properties: { responseTopic, correlationData: Buffer.from(correlation) }
            })
            const got = await reply
            const output = json(got.payload).data as { readonly sum?: unknown } | undefined
            return output?.sum === a + 1 && got.correlationData !== undefined &&
              Buffer.compare(got.correlationData, Buffer.from(correlation)) === 0
          }),
          { numRuns: 100 }
        )
      )
      assert.strictEqual(yield* health(serving), "connected")
    }))

  it.live("isTopicName admits no reply topic that makes the broker drop the connection (random topics)", () =>
    Effect.gen(function*() {
      const raw = yield* rawClient
      let closed = false
      raw.on("close", () => void (closed = true))
      let passed = 0
      let refused = 0
      const topics = fc.oneof(
        fc.string({ maxLength: 12 }),
        fc.string({ unit: fc.constantFrom("a", "/", "+", "#", "$", " ", "\u0000", "é"), maxLength: 8 })
      )
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(topics, async (topic) => {
            if (!Topics.isTopicName(topic)) return void refused++
            passed++
            // QoS 1: the PUBACK is the broker's answer to this very publish
            await raw.publishAsync(topic, "reply", { qos: 1 })
            return !closed
          }),
          { numRuns: 200 }
        )
      )
      assert.isAbove(passed, 20)
      assert.isAbove(refused, 20)
    }))

  it.live("interop: mosquitto_rr invokes a command; a plain MQTT client reads the event it emits", () =>
    Effect.gen(function*() {
      const raw = yield* rawClient
      const events = yield* Queue.unbounded<{ topic: string; payload: Buffer; contentType: string | undefined }>()
      raw.on("message", (topic, payload, packet) =>
        Queue.offerUnsafe(events, { topic, payload, contentType: packet.properties?.contentType }))
      yield* Effect.promise(() => raw.subscribeAsync(`${prefix}/evt/acme_002Eeu/calculator/added`, { qos: 1 }))
      const command = handWritten({
        id: "raw-call-1",
        type: "add",
        heraldkind: "command",
        tenantid: "acme.eu",
        receiverservice: "calculator",
        receiverversion: "1",
        expirytime: new Date(Date.now() + 5_000).toISOString(),
        data: { a: 2, b: 3 }
      })
      const out = yield* runTool("mosquitto_rr", [
        "-V", "5", "-h", HOST, "-p", String(PORT),
        "-t", `${prefix}/cmd/calculator/1/add`,
        "-e", `${prefix}/rr/${crypto.randomUUID().slice(0, 8)}`,
        "-D", "publish", "correlation-data", "rr-42",
        "-D", "publish", "message-expiry-interval", "5",
        "-W", "5",
        "-F", "%D|%C|%p",
        "-m", command
      ])
      const [correlation, contentType, ...rest] = out.trim().split("|")
      assert.strictEqual(correlation, "rr-42", "the reply echoes the correlation data")
      assert.strictEqual(contentType, "application/cloudevents+json")
      const reply = json(rest.join("|"))
      assert.strictEqual(reply.specversion, "1.0")
      assert.strictEqual(reply.heraldkind, "reply")
      assert.strictEqual(reply.heraldstatus, "ok")
      assert.strictEqual(reply.type, "add")
      assert.strictEqual(reply.causationid, "raw-call-1")
      assert.strictEqual(reply.correlationid, "raw-correlation")
      assert.strictEqual(reply.tenantid, "acme.eu")
      assert.strictEqual(reply.receiverservice, "raw")
      assert.deepStrictEqual(reply.data, { sum: 5 })

      const [emitted] = yield* takeN(events, 1, 5_000)
      const event = json(emitted!.payload)
      assert.strictEqual(emitted!.contentType, "application/cloudevents+json")
      assert.strictEqual(event.heraldkind, "event")
      assert.strictEqual(event.type, "added")
      assert.strictEqual(event.senderservice, "calculator")
      assert.strictEqual(event.tenantid, "acme.eu")
      assert.strictEqual(event.causationid, "raw-call-1")
      assert.deepStrictEqual(event.data, { sum: 5 })
    }).pipe(Effect.provide(CalculatorLive().pipe(Layer.provideMerge(mqttLayer())))))

  it.live("bad bytes on an event topic are dead-lettered and counted; the durable consumer goes on", () =>
    Effect.gen(function*() {
      const { dlq, got, letters, payloads, robust, verify } = yield* badBytes
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(Layer.mergeAll(robust, dlq).pipe(Layer.provide(mqttLayer())), scope)
      const raw = yield* rawClient
      for (const payload of payloads) {
        yield* Effect.promise(() => raw.publishAsync(`${prefix}/evt/_/mallory/wire/check`, payload, { qos: 1 }))
      }
      yield* verify
      yield* Effect.sleep("200 millis")
      yield* Scope.close(scope, Exit.void)
      // every one of them was acknowledged: nothing comes back when the service returns
      yield* Layer.build(robust.pipe(Layer.provide(mqttLayer())))
      yield* Effect.sleep("500 millis")
      assert.strictEqual(yield* Queue.size(got), 0)
      assert.strictEqual(yield* Queue.size(letters), 0)
    }))

  it.live("tenant and event-name pre-filters route exactly the matching events, durable or not", () =>
    Effect.gen(function*() {
      yield* preFilterRouting(["t/1", "t+#2", "t"])
    }).pipe(Effect.provide(mqttLayer())))

  it.live("broker fact: a shared subscription queues messages for its offline persistent members", () =>
    Effect.gen(function*() {
      const topic = `${prefix}/fact/${crypto.randomUUID().slice(0, 8)}`
      const session = (id: string, got: Array<string>) =>
        Effect.acquireRelease(
          Effect.promise(() => new Promise<MqttClient>((resolve, reject) => {
            const c = connect(URL, {
              protocolVersion: 5,
              clientId: `${clientIdPrefix}-fact-${id}`,
              clean: false,
              properties: { sessionExpiryInterval: 60 },
              reconnectPeriod: 0
            })
            c.on("message", (_t, payload) => void got.push(payload.toString()))
            c.once("connect", () => resolve(c))
            c.once("error", reject)
          })),
          (c) => Effect.promise(() => c.endAsync({ properties: { sessionExpiryInterval: 0 } }))
        )
      // member a subscribes, then leaves without ending its session
      const a = yield* Effect.promise(() => new Promise<MqttClient>((resolve) => {
        const c = connect(URL, {
          protocolVersion: 5,
          clientId: `${clientIdPrefix}-fact-a`,
          clean: false,
          properties: { sessionExpiryInterval: 60 },
          reconnectPeriod: 0
        })
        c.once("connect", () => resolve(c))
      }))
      yield* Effect.promise(() => a.subscribeAsync(`$share/fact/${topic}`, { qos: 1 }))
      yield* Effect.promise(() => a.endAsync())
      const present: Array<string> = []
      const b = yield* session("b", present)
      yield* Effect.promise(() => b.subscribeAsync(`$share/fact/${topic}`, { qos: 1 }))
      const raw = yield* rawClient
      for (let i = 0; i < 6; i++) yield* Effect.promise(() => raw.publishAsync(topic, String(i), { qos: 1 }))
      yield* Effect.sleep("300 millis")
      assert.strictEqual(present.length, 3, "the connected member got only its turns")
      const returned: Array<string> = []
      yield* session("a", returned)
      yield* eventually("the offline member gets the rest when it returns", Effect.sync(() => returned.length === 3), 3_000)
      assert.deepStrictEqual([...present, ...returned].sort(), ["0", "1", "2", "3", "4", "5"])
    }))

  it.live(
    "fault: the bridge survives a broker restart while calls and durable events flow",
    () =>
      brokerFault({
        name: "mqtt",
        bridge: () => mqttLayer(),
        stop: Effect.promise(() => stopBroker()),
        start: Effect.promise(() => startBroker()),
        // slow enough that some events are queued or unacknowledged when the broker stops
        handlerMs: 150
      }),
    60_000
  )
})

describe("MQTT wire mapping", () => {

  it("the tenant level is one valid level and decodes back to the tenant: injective", () => {
    fc.assert(fc.property(fc.option(anyString, { nil: undefined }), (tenant) => {
      const level = Topics.encodeTenant(tenant)
      assert.match(level, /^[A-Za-z0-9_-]+$/)
      assert.strictEqual(Topics.decodeTenant(level), tenant)
    }), { numRuns: 500 })
    assert.strictEqual(Topics.encodeTenant(undefined), "_")
    assert.strictEqual(Topics.encodeTenant(""), "__")
    assert.strictEqual(Topics.encodeTenant("acme.eu"), "acme_002Eeu")
    assert.strictEqual(Topics.encodeTenant("a/b+#"), "a_002Fb_002B_0023")
  })

  it("the pre-filter topics admit exactly the events the hints admit", () => {
    fc.assert(fc.property(
      hintedEvent(fc.oneof(anyString, fc.constantFrom("t1", "t/2"))),
      ({ admitted, eventNames, name, tenantId, tenantIds }) => {
        const topic = Topics.eventTopic("h/x", { id: "e", eventName: name, senderService: "svc", tenantId })!
        const filters = Topics.filterTopics("h/x", { eventNames, tenantIds })
        const matched = filters.filter((f) => mqttMatches(f, topic))
        assert.strictEqual(matched.length > 0, admitted, `${topic} vs ${filters.join(" ")}`)
        assert.isAtMost(matched.length, 1, "an event matches one filter of a subscription at most")
      }
    ), { numRuns: 500 })
  })

  it("commands, shares and client ids", () => {
    const address = { service: "calculator", version: "1", command: "add" }
    assert.strictEqual(Topics.commandTopic("herald", address), "herald/cmd/calculator/1/add")
    assert.strictEqual(Topics.commandFilter("herald", address), "$share/calculator.1.add/herald/cmd/calculator/1/add")
    assert.isFalse(Topics.isValidAddress({ ...address, command: "a/b" }))
    assert.isFalse(Topics.isValidAddress({ ...address, service: "+" }))
    const spec = { service: "billing", version: "2", subscription: "audit", instance: "i-1" }
    assert.strictEqual(Topics.durableClientId("acme/herald", { ...spec, delivery: "shared" }), "acme/herald:billing/2/audit")
    assert.strictEqual(Topics.durableClientId("herald", { ...spec, delivery: "broadcast" }), "herald:billing/2/audit/i-1")
    assert.strictEqual(Topics.expirySeconds(10_500, 10_000), 1)
    assert.strictEqual(Topics.expirySeconds(12_001, 10_000), 3)
    assert.strictEqual(Topics.expirySeconds(9_000, 10_000), 1)
    assert.isUndefined(Topics.eventTopic("h", { id: "e", eventName: "a/b", senderService: "s" }))
  })
})

BridgeSuite.run("mqtt", mqttLayer(), { routingRuns: 15 })
