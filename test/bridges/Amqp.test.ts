/**
 * AMQP-specific tests of the AMQP bridge, against a real RabbitMQ on 127.0.0.1:5672 (guest/guest),
 * plus the behavioural conformance suite (BridgeSuite). This file covers durability, wire interop
 * with non-Herald clients (amqp-tools and plain amqplib), bad input on the wire, topology recovery,
 * a dropped connection and a broker restart. Every run uses its own name prefix and deletes what it
 * declared; the broker is always left running.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as amqp from "amqplib"
import type { Channel, ChannelModel, ConsumeMessage } from "amqplib"
import { Clock, Deferred, Effect, Exit, Fiber, Layer, Metric, Queue, Ref, Scope } from "effect"
import { execFile } from "node:child_process"
import { createConnection } from "node:net"
import { promisify } from "node:util"
import * as fc from "fast-check"
import * as AmqpBridge from "../../src/bridges/Amqp.ts"
import * as Topology from "../../src/internal/amqpTopology.ts"
import * as BridgeSuite from "../../src/testing/BridgeSuite.ts"
import { Bridge, Client, Event, Metrics, Service } from "../../src/index.ts"
import { Added, Calculator, CalculatorLive, calculatorHandlers } from "../fixtures.ts"
import {
  badBytes,
  commandBytes,
  durableKeeper,
  eventBytes,
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
import { amqpMatches, anyString, hintedEvent } from "../wireMatching.ts"
import { brokerFault } from "./faults.ts"

const URL = "amqp://guest:guest@127.0.0.1:5672"
/** A fresh name prefix per run, so leftovers of other runs never interfere. */
const prefix = `ht${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`
const amqpLayer = () => AmqpBridge.layer({ prefix })
const run = promisify(execFile)

// ---------------------------------------------------------------------------------------------
// the local broker: stop, start, and always leave it running
// ---------------------------------------------------------------------------------------------

const portOpen = () =>
  new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port: 5672 })
    socket.once("connect", () => (socket.destroy(), resolve(true)))
    socket.once("error", () => (socket.destroy(), resolve(false)))
  })

const waitPort = async (open: boolean, ms = 30_000) => {
  for (let waited = 0; waited < ms; waited += 100) {
    if ((await portOpen()) === open) return true
    await new Promise((r) => setTimeout(r, 100))
  }
  return false
}

/** A real broker restart, the fastest honest one: the RabbitMQ application stops (every connection is closed, queues stop) and starts again, recovering its queues from disk. */
const stopBroker = async () => {
  await run("rabbitmqctl", ["stop_app"])
  await waitPort(false)
}

/** Starts the broker application, or the whole node when it is down; waits until AMQP answers. */
const ensureBroker = async () => {
  if (await portOpen()) return
  await run("rabbitmqctl", ["start_app"]).catch(() => run("rabbitmq-server", ["-detached"]))
  if (!(await waitPort(true, 60_000))) throw new Error("RabbitMQ did not come back on 127.0.0.1:5672")
}

/** Deletes every exchange and queue of this run's prefix. */
const cleanUp = async () => {
  await ensureBroker()
  const names = async (what: "queues" | "exchanges") =>
    (await run("rabbitmqctl", ["-q", `list_${what}`, "name"])).stdout.split("\n").map((l) => l.trim()).filter((n) => n.startsWith(`${prefix}.`))
  const conn = await amqp.connect(URL)
  for (const q of await names("queues")) {
    const ch = await conn.createChannel()
    await ch.deleteQueue(q).catch(() => undefined)
    await ch.close().catch(() => undefined)
  }
  for (const x of await names("exchanges")) {
    const ch = await conn.createChannel()
    await ch.deleteExchange(x).catch(() => undefined)
    await ch.close().catch(() => undefined)
  }
  await conn.close()
}

afterAll(cleanUp, 60_000)

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

const decoder = new TextDecoder()
const json = (data: Uint8Array): Record<string, unknown> => JSON.parse(decoder.decode(data)) as Record<string, unknown>

/** A plain amqplib connection, as a program without Herald would use. */
const rawClient = Effect.acquireRelease(
  Effect.promise(() => amqp.connect(URL)),
  (conn) => Effect.promise(() => conn.close().catch(() => undefined))
)

/** A channel of its own (a failed declaration closes only it). */
const rawChannel = (conn: ChannelModel) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const ch = await conn.createChannel()
      ch.on("error", () => undefined)
      return ch
    }),
    (ch) => Effect.promise(() => ch.close().catch(() => undefined))
  )

/** The number of ready messages in a queue, or `undefined` when it does not exist. */
const readyCount = (conn: ChannelModel, queue: string) =>
  Effect.promise(async () => {
    const ch = await conn.createChannel()
    ch.on("error", () => undefined)
    const info = await ch.checkQueue(queue).catch(() => undefined)
    await ch.close().catch(() => undefined)
    return info?.messageCount
  })

/** Consumes a queue into an Effect queue until the scope closes. */
const rawConsume = (ch: Channel, queue: string) =>
  Effect.gen(function*() {
    const got = yield* Queue.unbounded<ConsumeMessage>()
    yield* Effect.promise(() => ch.consume(queue, (msg) => void (msg !== null && Queue.offerUnsafe(got, msg)), { noAck: true }))
    return got
  })

/** The calculator's handlers, with `sleep` announcing that it started. */
const announcingHandlers = (started: Queue.Queue<string>) => ({
  ...calculatorHandlers,
  sleep: (input: { ms: number }) => Effect.andThen(Queue.offer(started, "command"), calculatorHandlers.sleep(input))
})


describe("AmqpBridge", () => {
  it.live("rejects bad settings and an unreachable broker at build, without hanging", () =>
    Effect.gen(function*() {
      const bad = yield* Effect.flip(Layer.build(AmqpBridge.layer({ prefix: "bad prefix" })))
      assert.match(bad.message, /prefix/)
      const notAmqp = yield* Effect.flip(Layer.build(AmqpBridge.layer({ urls: "http://127.0.0.1:5672" })))
      assert.match(notAmqp.message, /not an amqp:\/\/ or amqps:\/\/ URL/)
      const tls = yield* Effect.flip(Layer.build(AmqpBridge.layer({ tls: { rejectUnauthorized: true } })))
      assert.match(tls.message, /no URL is amqps/)
      const external = yield* Effect.flip(Layer.build(AmqpBridge.layer({ externalAuth: true })))
      assert.match(external.message, /no URL is amqps/)
      const start = yield* Clock.currentTimeMillis
      const down = yield* Effect.flip(Layer.build(AmqpBridge.layer({ urls: ["amqp://127.0.0.1:1", "amqp://127.0.0.1:2"], timeout: "1 second" })))
      assert.strictEqual(down._tag, "BridgeError")
      assert.match(down.message, /cannot connect to amqp:\/\/127\.0\.0\.1:1\/.*cannot connect to amqp:\/\/127\.0\.0\.1:2\//)
      assert.isBelow((yield* Clock.currentTimeMillis) - start, 2_500)
    }))

  it.live("fails over to the next URL, with credentials and vhost given apart", () =>
    Effect.gen(function*() {
      const ctx = yield* Layer.build(AmqpBridge.layer({
        prefix,
        urls: ["amqp://127.0.0.1:1", "amqp://127.0.0.1:5672"],
        username: "guest",
        password: "guest",
        vhost: "/",
        timeout: "1 second"
      }))
      assert.strictEqual(yield* health(ctx), "connected")
    }))

  it.live("a command queue exists only while served: NoResponder at once after the last instance stops", () =>
    Effect.gen(function*() {
      const conn = yield* rawClient
      const queue = `${prefix}.cmd.calculator.1.add`
      const client = yield* Layer.build(amqpLayer())
      const calc = yield* Client.make(Calculator, { timeout: "10 seconds" }).pipe(Effect.provide(client))
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(CalculatorLive().pipe(Layer.provide(amqpLayer())), scope)
      assert.deepStrictEqual(yield* calc.add({ a: 2, b: 2 }), { sum: 4 })
      assert.strictEqual(yield* readyCount(conn, queue), 0)
      yield* Scope.close(scope, Exit.void)
      yield* eventually("the queue is gone", Effect.map(readyCount(conn, queue), (n) => n === undefined))
      const start = yield* Clock.currentTimeMillis
      assert.strictEqual((yield* Effect.flip(calc.add({ a: 1, b: 1 })))._tag, "NoResponder")
      assert.isBelow((yield* Clock.currentTimeMillis) - start, 1_000)
    }))

  it.live("startRequest sends at once when connected: the reply comes back through done; a cancelled wait leaves nothing pending", () =>
    Effect.gen(function*() {
      const client = yield* Layer.build(amqpLayer())
      const bridge = yield* Effect.provide(Bridge.Bridge.use(Effect.succeed), client)
      yield* Layer.build(CalculatorLive().pipe(Layer.provide(amqpLayer())))
      const address = { service: "calculator", version: "1", command: "add" }
      assert.isFunction(bridge.startRequest)
      const call = Effect.callback<Uint8Array, unknown>((resume) => {
        const cancel = bridge.startRequest!(address, commandBytes(address, { a: 20, b: 22 }), Date.now() + 5_000, resume)
        assert.isFunction(cancel, "connected: it must send at once")
      })
      const reply = json(yield* call)
      assert.strictEqual(reply.heraldstatus, "ok")
      assert.deepStrictEqual(reply.data, { sum: 42 })
      // cancelled before the reply: done is never called and the pending table is empty again
      let called = 0
      const cancel = bridge.startRequest!(address, commandBytes(address, { a: 1, b: 1 }), Date.now() + 5_000, () => void called++)
      assert.strictEqual(yield* bridge.pendingRequests, 1)
      cancel!()
      assert.strictEqual(yield* bridge.pendingRequests, 0)
      yield* Effect.sleep("200 millis")
      assert.strictEqual(called, 0)
    }))

  it.live("a durable subscription gets the events published while its service was down, and acks them", () =>
    Effect.gen(function*() {
      const { got, publish, start } = yield* durableKeeper(amqpLayer)
      const first = yield* start
      yield* publish(0)
      assert.deepStrictEqual((yield* takeN(got, 1)).map((d) => d.sum), [0])
      yield* Scope.close(first, Exit.void)

      for (const sum of [1, 2, 3, 4, 5]) yield* publish(sum)
      const conn = yield* rawClient
      const queue = `${prefix}.sub.keeper.1.ticks`
      assert.strictEqual(yield* readyCount(conn, queue), 5, "the durable queue keeps them while nobody consumes")
      assert.strictEqual(yield* Queue.size(got), 0)

      const second = yield* start
      const redelivered = yield* takeN(got, 5)
      assert.deepStrictEqual([...new Set(redelivered.map((d) => d.sum))].sort(), [1, 2, 3, 4, 5])
      yield* Scope.close(second, Exit.void)
      assert.strictEqual(yield* readyCount(conn, queue), 0, "every event was acknowledged")
    }))

  it.live("a durable event whose handler is interrupted at shutdown is redelivered", () =>
    Effect.gen(function*() {
      const again = yield* redeliveryAfterInterruptedShutdown(amqpLayer)
      assert.strictEqual(again.sum, 5)
      assert.isAtLeast(again.deliveryCount, 2)
    }))

  it.live("stopping an instance lets in-flight work finish: the command is answered, the event acknowledged once", () =>
    Effect.gen(function*() {
      const Graceful = Service.make("graceful", "1", { subscriptions: [eventSub("work", "graceful.job", { durable: true })] })
      const started = yield* Queue.unbounded<string>()
      const done = yield* Queue.unbounded<number>()
      const handlers = {
        ...announcingHandlers(started),
        work: (p: { sum: number }) => Effect.andThen(Queue.offer(started, "event"), Effect.as(Effect.sleep("300 millis"), undefined)).pipe(
          Effect.andThen(Queue.offer(done, p.sum))
        )
      }
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(
        Layer.mergeAll(Service.toLayer(Calculator, handlers), Service.toLayer(Graceful, { work: handlers.work })).pipe(
          Layer.provide(amqpLayer())
        ),
        scope
      )
      const client = yield* Layer.build(amqpLayer())
      const calc = yield* Client.make(Calculator, { timeout: "5 seconds" }).pipe(Effect.provide(client))
      yield* Event.publish(Event.make("graceful.job", Added), { sum: 8 }).pipe(Effect.provide(client))
      const call = yield* Effect.forkChild(calc.sleep({ ms: 300 }))
      yield* takeN(started, 2)
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(yield* Fiber.join(call), { slept: 300 })
      assert.deepStrictEqual(yield* takeN(done, 1), [8])
      assert.strictEqual(yield* readyCount(yield* rawClient, `${prefix}.sub.graceful.1.work`), 0, "acknowledged, not requeued")
    }))

  it.live("a non-durable subscription whose handlers fall behind drops deliveries instead of buffering without bound", () =>
    Effect.gen(function*() {
      const Behind = Service.make("behind", "1", { subscriptions: [eventSub("slow", "behind.tick")] })
      const gate = yield* Deferred.make<void>()
      const handled = yield* Ref.make(0)
      // prefetch 2: at most 10 × 2 deliveries in flight on a subscription consumed without acks
      const bridge = AmqpBridge.layer({ prefix, prefetch: 2 })
      yield* Effect.gen(function*() {
        for (let sum = 0; sum < 30; sum++) yield* Event.publish(Event.make("behind.tick", Added), { sum })
        yield* Effect.sleep("500 millis")
        yield* Deferred.succeed(gate, undefined)
        yield* eventually("the deliveries in flight are handled", Effect.map(Ref.get(handled), (n) => n === 20))
        yield* Effect.sleep("200 millis")
        assert.strictEqual(yield* Ref.get(handled), 20, "the 10 beyond the bound were dropped")
        for (let sum = 0; sum < 5; sum++) yield* Event.publish(Event.make("behind.tick", Added), { sum })
        yield* eventually("it goes on", Effect.map(Ref.get(handled), (n) => n === 25))
      }).pipe(Effect.provide(
        Service.toLayer(Behind, { slow: () => Effect.andThen(Deferred.await(gate), Ref.update(handled, (n) => n + 1)) }).pipe(
          Layer.provideMerge(bridge)
        )
      ))
    }))

  it.live("interop: amqp-publish invokes a command, plain amqplib reads the reply and the event it emits", () =>
    Effect.gen(function*() {
      const conn = yield* rawClient
      const ch = yield* rawChannel(conn)
      // a foreign caller's reply queue, and a foreign reader of the `added` events of tenant acme.eu
      const { queue: replies } = yield* Effect.promise(() => ch.assertQueue("", { exclusive: true }))
      const { queue: events } = yield* Effect.promise(() => ch.assertQueue("", { exclusive: true }))
      yield* Effect.promise(() => ch.bindQueue(events, `${prefix}.events`, "acme_002Eeu.*.added"))
      const gotReplies = yield* rawConsume(ch, replies)
      const gotEvents = yield* rawConsume(ch, events)
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
      yield* Effect.promise(() =>
        run("amqp-publish", [
          "--url", URL,
          "--routing-key", `${prefix}.cmd.calculator.1.add`,
          "--reply-to", replies,
          "--content-type", "application/cloudevents+json",
          "--body", command
        ]))
      const [answer] = yield* takeN(gotReplies, 1)
      const reply = json(answer!.content)
      assert.strictEqual(answer!.properties.contentType, "application/cloudevents+json")
      assert.strictEqual(reply.specversion, "1.0")
      assert.strictEqual(reply.heraldkind, "reply")
      assert.strictEqual(reply.heraldstatus, "ok")
      assert.strictEqual(reply.type, "add")
      assert.strictEqual(reply.causationid, "raw-call-1")
      assert.strictEqual(reply.correlationid, "raw-correlation")
      assert.strictEqual(reply.tenantid, "acme.eu")
      assert.strictEqual(reply.receiverservice, "raw")
      assert.deepStrictEqual(reply.data, { sum: 5 })

      const [emitted] = yield* takeN(gotEvents, 1)
      const event = json(emitted!.content)
      assert.strictEqual(event.heraldkind, "event")
      assert.strictEqual(event.type, "added")
      assert.strictEqual(event.senderservice, "calculator")
      assert.strictEqual(event.tenantid, "acme.eu")
      assert.strictEqual(event.causationid, "raw-call-1")
      assert.deepStrictEqual(event.data, { sum: 5 })
      assert.strictEqual(emitted!.fields.routingKey, "acme_002Eeu.calculator.added")
      assert.strictEqual(emitted!.properties.messageId, event.id)
      assert.strictEqual(emitted!.properties.type, "added")
      assert.strictEqual(emitted!.properties.deliveryMode, 2)
      assert.strictEqual(emitted!.properties.contentType, "application/cloudevents+json")
    }).pipe(Effect.provide(CalculatorLive().pipe(Layer.provideMerge(amqpLayer())))))

  it.live("interop: a plain amqplib service answers a Herald caller, and sees the command's properties", () =>
    Effect.gen(function*() {
      const conn = yield* rawClient
      const ch = yield* rawChannel(conn)
      const queue = `${prefix}.cmd.calculator.1.lookup`
      yield* Effect.promise(() => ch.assertQueue(queue, { durable: false, autoDelete: true, arguments: { "x-queue-type": "classic" } }))
      const seen = yield* Queue.unbounded<ConsumeMessage>()
      yield* Effect.promise(() =>
        ch.consume(queue, (msg) => {
          if (msg === null) return
          Queue.offerUnsafe(seen, msg)
          const cmd = json(msg.content)
          const key = (cmd.data as { key: string }).key
          ch.sendToQueue(msg.properties.replyTo as string, Buffer.from(handWritten({
            type: "lookup",
            heraldkind: "reply",
            heraldstatus: "ok",
            causationid: cmd.id,
            data: { value: `raw:${key}` }
          })), { correlationId: msg.properties.correlationId as string })
          ch.ack(msg)
        }))
      const calc = yield* Client.make(Calculator, { timeout: "3 seconds" })
      assert.deepStrictEqual(yield* calc.lookup({ key: "k" }), { value: "raw:k" })
      const [msg] = yield* takeN(seen, 1)
      assert.strictEqual(msg!.fields.exchange, "")
      assert.strictEqual(msg!.fields.routingKey, queue)
      assert.match(String(msg!.properties.replyTo), /^amq\.rabbitmq\.reply-to\./)
      assert.strictEqual(msg!.properties.contentType, "application/cloudevents+json")
      const expiration = Number(msg!.properties.expiration)
      assert.isAbove(expiration, 3_000, "expiration = time left to the deadline + 1 s grace")
      assert.isAtMost(expiration, 4_000)
      assert.strictEqual(json(msg!.content).heraldkind, "command")
    }).pipe(Effect.provide(amqpLayer())))

  it.live("bad bytes on the events exchange are dead-lettered and counted; the durable consumer goes on", () =>
    Effect.gen(function*() {
      const { dlq, got, payloads, robust, verify } = yield* badBytes
      const scope = yield* Scope.make()
      const ctx = yield* Layer.buildWithScope(Layer.mergeAll(robust, dlq).pipe(Layer.provideMerge(amqpLayer())), scope)
      const conn = yield* rawClient
      const ch = yield* rawChannel(conn)
      for (const payload of payloads) ch.publish(`${prefix}.events`, "_.mallory.wire.check", Buffer.from(payload))
      yield* verify
      assert.strictEqual(yield* Queue.size(got), 0)
      assert.strictEqual(yield* health(ctx), "connected")
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(yield* readyCount(conn, `${prefix}.sub.robust.1.wire`), 0, "all four were acknowledged")
    }))

  it.live("commands with hostile reply_to names do not stop a service: its connection stays up and it answers the next calls", () =>
    Effect.gen(function*() {
      const serving = yield* servingCalculator(amqpLayer())
      const calling = yield* Layer.build(amqpLayer())
      const calc = yield* Client.make(Calculator, { timeout: "3 seconds" }).pipe(Effect.provide(calling))
      assert.deepStrictEqual(yield* calc.add({ a: 1, b: 1 }), { sum: 2 })
      const handledOk = Effect.map(
        Metric.value(Metric.withAttributes(Metrics.commandHandled, { service: "calculator", version: "1", command: "add", outcome: "ok" })),
        (s) => s.count
      )
      const before = yield* handledOk
      // the serving bridge's health, sampled from now on: its connection must stay up
      const states = new Set<string>()
      yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.map(health(serving), (h) => states.add(h)), Effect.sleep("2 millis"))))
      const conn = yield* rawClient
      const ch = yield* rawChannel(conn)
      const queue = `${prefix}.cmd.calculator.1.add`
      // a malformed direct reply-to name makes RabbitMQ 3.10 close the connection that publishes the
      // reply (541 INTERNAL_ERROR): the serving bridge's reply connection, not its main one; the
      // others go nowhere
      for (const replyTo of ["amq.rabbitmq.reply-to.g1h2AAAA.BBBB", "amq.rabbitmq.reply-to.AAAA", "no-such-queue", "", "x".repeat(255)]) {
        ch.sendToQueue(queue, Buffer.from(commandBytes({ service: "calculator", version: "1", command: "add" }, { a: 1, b: 2 })), {
          replyTo,
          correlationId: "hostile"
        })
      }
      // all five handled (replied to), then time for the broker to drop the connection and the bridge to
      // reconnect; the service answers again, and goes on answering
      yield* eventually("the hostile commands were handled", Effect.map(handledOk, (n) => n >= before + 5))
      yield* Effect.sleep("1 second")
      yield* eventually(
        "a call succeeds again",
        Effect.map(Effect.exit(calc.add({ a: 2, b: 3 }, { timeout: "1 second" })), (exit) =>
          Exit.isSuccess(exit) && exit.value.sum === 5)
      )
      for (let i = 0; i < 20; i++) assert.deepStrictEqual(yield* calc.add({ a: i, b: 1 }), { sum: i + 1 })
      assert.deepStrictEqual([...states], ["connected"])
    }))

  it.live("a bridge has one connection; serving opens a second one for replies; closing the bridge closes both", () =>
    Effect.gen(function*() {
      const name = `${prefix}-conns`
      const connections = Effect.promise(async () =>
        (await run("rabbitmqctl", ["-q", "list_connections", "client_properties"])).stdout.split("\n")
          .flatMap((l) => [...l.matchAll(/"connection_name","?([^"\]]*)"?\}/g)].map((m) => m[1]!))
          .filter((n) => n.startsWith(name))
          .sort()
      )
      const scope = yield* Scope.make()
      const bridge = yield* Layer.buildWithScope(AmqpBridge.layer({ prefix, connectionName: name }), scope)
      yield* eventually("the bridge's connection is listed", Effect.map(connections, (cs) => cs.length === 1))
      assert.deepStrictEqual(yield* connections, [name])
      yield* Layer.buildWithScope(CalculatorLive(), scope).pipe(Effect.provide(bridge))
      yield* eventually("the reply connection is listed", Effect.map(connections, (cs) => cs.length === 2))
      assert.deepStrictEqual(yield* connections, [name, `${name} (replies)`])
      yield* Scope.close(scope, Exit.void)
      yield* eventually("both connections are closed", Effect.map(connections, (cs) => cs.length === 0))
    }))

  it.live("foreign x-delivery-count headers on a durable subscription give handlers a positive integer delivery count", () =>
    Effect.gen(function*() {
      const Counted = Service.make("counted", "1", { subscriptions: [eventSub("counts", "fuzz.count", { durable: true })] })
      const got = yield* Queue.unbounded<{ readonly sum: number; readonly deliveryCount: number }>()
      yield* Layer.build(Service.toLayer(Counted, { counts: (p, info) => Queue.offer(got, { sum: p.sum, deliveryCount: info.deliveryCount }) }))
      const ch = yield* rawChannel(yield* rawClient)
      const key = Topology.routingKey({ id: "x", eventName: "fuzz.count", senderService: "client" })!
      const counts: ReadonlyArray<unknown> = [2.5, -1, 1e300, Number.MAX_SAFE_INTEGER, "7", { n: 1 }, [1, 2], true, null, 3]
      counts.forEach((count, sum) =>
        ch.publish(`${prefix}.events`, key, Buffer.from(eventBytes("fuzz.count", { sum })), { headers: { "x-delivery-count": count } })
      )
      const delivered = yield* takeN(got, counts.length)
      for (const d of delivered) assert.isTrue(Number.isSafeInteger(d.deliveryCount) && d.deliveryCount >= 1, `event ${d.sum}: ${d.deliveryCount}`)
      // a well-formed count (deliveries before this one) still counts
      assert.strictEqual(delivered.find((d) => d.sum === counts.length - 1)?.deliveryCount, 4)
    }).pipe(Effect.provide(amqpLayer())))

  it.live("where the broker refuses the reply connection (a vhost connection limit), serve fails with a BridgeError saying so", () =>
    Effect.gen(function*() {
      const vhost = `${prefix}-limited`
      yield* Effect.acquireRelease(
        Effect.promise(async () => {
          await run("rabbitmqctl", ["add_vhost", vhost])
          await run("rabbitmqctl", ["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"])
          await run("rabbitmqctl", ["set_vhost_limits", "-p", vhost, JSON.stringify({ "max-connections": 1 })])
        }),
        () => Effect.promise(() => run("rabbitmqctl", ["delete_vhost", vhost]).catch(() => undefined))
      )
      const bridge = yield* Layer.build(AmqpBridge.layer({ prefix, vhost, timeout: "2 seconds" }))
      const error = yield* Effect.flip(Layer.build(CalculatorLive()).pipe(Effect.provide(bridge)))
      assert.strictEqual(error._tag, "BridgeError")
      assert.match(error.message, /serve calculator\/1\/add: the reply connection: /)
      // the bridge's own connection is untouched
      assert.strictEqual(yield* health(bridge), "connected")
    }))

  it.live("tenant and event-name bindings route exactly the matching events, durable or not", () =>
    Effect.gen(function*() {
      yield* preFilterRouting(["t.1", "t2", "t3"])
      // the broker filtered them: nothing else is waiting in the durable queue either
      assert.strictEqual(yield* readyCount(yield* rawClient, `${prefix}.sub.router.1.kept`), 0)
    }).pipe(Effect.provide(amqpLayer())))

  it.live("a durable broadcast subscription has one queue per instance, deleted when the instance stops", () =>
    Effect.gen(function*() {
      const Fan = Service.make("fan", "1", { subscriptions: [eventSub("all", "fan.out", { durable: true, delivery: "broadcast" })] })
      const got = yield* Queue.unbounded<{ instance: number; sum: number }>()
      const fan = (instance: number) => Service.toLayer(Fan, { all: (p) => Queue.offer(got, { instance, sum: p.sum }) })
      const queues = Effect.promise(async () =>
        (await run("rabbitmqctl", ["-q", "list_queues", "name"])).stdout.split("\n").map((l) => l.trim())
          .filter((n) => n.startsWith(`${prefix}.sub.fan.1.all.`))
      )
      const scope = yield* Scope.make()
      const services = yield* Layer.buildWithScope(Layer.mergeAll(fan(0), fan(1)).pipe(Layer.provideMerge(amqpLayer())), scope)
      assert.strictEqual((yield* queues).length, 2)
      yield* Event.publish(Event.make("fan.out", Added), { sum: 7 }).pipe(Effect.provide(services))
      const copies = yield* takeN(got, 2)
      assert.deepStrictEqual(copies.map((c) => c.instance).sort(), [0, 1])
      yield* Scope.close(scope, Exit.void)
      yield* eventually("the instances' queues are deleted", Effect.map(queues, (qs) => qs.length === 0))
    }))

  it.live("a queue deleted under a running subscription is declared again and consumed", () =>
    Effect.gen(function*() {
      const Tick = Event.make("phoenix.tick", Added)
      const Phoenix = Service.make("phoenix", "1", { subscriptions: [eventSub("ticks", "phoenix.tick", { durable: true })] })
      const got = yield* Queue.unbounded<number>()
      yield* Effect.gen(function*() {
        const conn = yield* rawClient
        const ch = yield* rawChannel(conn)
        const queue = `${prefix}.sub.phoenix.1.ticks`
        yield* Effect.promise(() => ch.deleteQueue(queue))
        yield* eventually("the queue is back", Effect.map(readyCount(conn, queue), (n) => n !== undefined))
        yield* Effect.sleep("200 millis")
        yield* Event.publish(Tick, { sum: 1 })
        assert.deepStrictEqual(yield* takeN(got, 1), [1])
      }).pipe(Effect.provide(Service.toLayer(Phoenix, { ticks: (p) => Queue.offer(got, p.sum) }).pipe(Layer.provideMerge(amqpLayer()))))
    }))

  it.live("connections closed by the broker are re-opened and the topology re-declared", () =>
    Effect.gen(function*() {
      const Tick = Event.make("dropped.tick", Added)
      const Sink = Service.make("drop-sink", "1", {
        subscriptions: [eventSub("kept", "dropped.tick", { durable: true }), eventSub("live", "dropped.tick", { delivery: "broadcast" })]
      })
      const kept = yield* Queue.unbounded<number>()
      const live = yield* Queue.unbounded<number>()
      const started = yield* Queue.unbounded<string>()
      const serving = yield* Layer.build(amqpLayer())
      yield* Layer.build(Layer.mergeAll(
        // the in-flight call below leaves its handler sleeping: no need to wait for it at the end
        Service.toLayer(Calculator, announcingHandlers(started), { drainTimeout: "100 millis" }),
        Service.toLayer(Sink, { kept: (p) => Queue.offer(kept, p.sum), live: (p) => Queue.offer(live, p.sum) })
      )).pipe(Effect.provide(serving))
      const calling = yield* Layer.build(amqpLayer())
      const calc = yield* Client.make(Calculator, { timeout: "3 seconds" }).pipe(Effect.provide(calling))
      assert.deepStrictEqual(yield* calc.lookup({ key: "before" }), { value: "BEFORE" })
      // a call in flight when the connection drops: its direct reply-to is gone with the connection.
      // Its handler outlasts rabbitmqctl (slow to start on a loaded machine), so only the drop can end it.
      const inFlight = yield* Effect.forkChild(Effect.exit(calc.sleep({ ms: 20_000 }, { timeout: "25 seconds" })))
      yield* takeN(started, 1)

      yield* Effect.promise(() => run("rabbitmqctl", ["close_all_connections", "herald test: connection drop"]))
      const dropped = yield* Clock.currentTimeMillis
      assert.strictEqual(outcomeOf(yield* Fiber.join(inFlight)), "BridgeError", "not a Timeout: it ends at once")
      assert.isBelow((yield* Clock.currentTimeMillis) - dropped, 5_000, "ended by the drop, long before its timeout")
      yield* eventually("the calling bridge reconnects", Effect.map(health(calling), (h) => h === "connected"))
      yield* eventually("the serving bridge reconnects", Effect.map(health(serving), (h) => h === "connected"))
      yield* eventually(
        "a call succeeds again",
        Effect.map(Effect.exit(calc.lookup({ key: "after" }, { timeout: "1 second" })), Exit.isSuccess)
      )
      yield* Event.publish(Tick, { sum: 9 }).pipe(Effect.provide(calling))
      assert.deepStrictEqual(yield* takeN(kept, 1), [9])
      assert.deepStrictEqual(yield* takeN(live, 1), [9], "the exclusive broadcast queue was declared again")
      assert.strictEqual(yield* Bridge.Bridge.use((b) => b.pendingRequests).pipe(Effect.provide(calling)), 0)
    }))

  it.live("a channel error (the events exchange deleted) recycles the connection and re-declares the topology", () =>
    Effect.gen(function*() {
      const Tick = Event.make("lost.tick", Added)
      const Sink = Service.make("lost-sink", "1", { subscriptions: [eventSub("ticks", "lost.tick", { durable: true })] })
      const got = yield* Queue.unbounded<number>()
      yield* Effect.gen(function*() {
        yield* Event.publish(Tick, { sum: 1 })
        assert.deepStrictEqual(yield* takeN(got, 1), [1])
        const ch = yield* rawChannel(yield* rawClient)
        // an operator deletes the exchange: the bindings go with it, the next publish is a channel error
        yield* Effect.promise(() => ch.deleteExchange(`${prefix}.events`))
        yield* Event.publish(Tick, { sum: 2 })
        assert.deepStrictEqual(yield* takeN(got, 1), [2])
        assert.strictEqual(yield* Bridge.Bridge.use((b) => b.health), "connected")
      }).pipe(Effect.provide(Service.toLayer(Sink, { ticks: (p) => Queue.offer(got, p.sum) }).pipe(Layer.provideMerge(amqpLayer()))))
    }))

  it.live(
    "fault: the bridge survives a broker restart while calls and durable events flow",
    () =>
      Effect.gen(function*() {
        // a service that starts during the outage: its subscription waits for the connection
        const Tick = Event.make("fault.tick", Added)
        const Late = Service.make("fault-late", "1", { subscriptions: [eventSub("ticks", "fault.tick", { durable: true })] })
        const late = yield* Ref.make(new Set<number>())
        const lateBridge = yield* Layer.build(AmqpBridge.layer({ prefix, timeout: "20 seconds" }))
        const { calling } = yield* brokerFault({
          name: "amqp",
          bridge: amqpLayer,
          stop: Effect.promise(stopBroker),
          start: Effect.promise(ensureBroker),
          reconnectMs: 15_000,
          duringOutage: Effect.asVoid(Layer.build(
            Service.toLayer(Late, { ticks: (p) => Ref.update(late, (s) => new Set(s).add(p.sum)) })
          ).pipe(Effect.provide(lateBridge)))
        })
        yield* Event.publish(Tick, { sum: -1 }).pipe(Effect.provide(calling))
        yield* eventually("the service started during the outage receives events", Effect.map(Ref.get(late), (got) => got.has(-1)))
      }),
    60_000
  )
})

describe("AMQP wire mapping", () => {
  // long tenants too: past 64 characters a routing-key word is a hash
  const anyTenant = fc.oneof(anyString, fc.string({ unit: "binary", minLength: 30, maxLength: 80 }))

  it("the tenant word is one routing-key word; it decodes back to the tenant unless hashed", () => {
    fc.assert(fc.property(fc.option(anyTenant, { nil: undefined }), fc.option(anyTenant, { nil: undefined }), (tenant, other) => {
      const word = Topology.encodeTenant(tenant)
      assert.match(word, /^[A-Za-z0-9_~-]+$/)
      assert.isAtMost(word.length, 64)
      if (word.startsWith("~")) assert.lengthOf(word, 44)
      else assert.strictEqual(Topology.decodeTenant(word), tenant)
      if (other !== tenant) assert.notStrictEqual(Topology.encodeTenant(other), word)
    }), { numRuns: 500 })
    assert.strictEqual(Topology.encodeTenant(undefined), "_")
    assert.strictEqual(Topology.encodeTenant(""), "__")
    assert.strictEqual(Topology.encodeTenant("acme.eu"), "acme_002Eeu")
    assert.strictEqual(Topology.encodeTenant("a*b > c/#+"), "a_002Ab_0020_003E_0020c_002F_0023_002B")
  })

  it("the binding keys admit every event the hints admit, and nothing the hints exclude", () => {
    fc.assert(fc.property(
      hintedEvent(fc.oneof(anyTenant, fc.constantFrom("t1", "t.2"))),
      ({ admitted, eventNames, name, tenantId, tenantIds }) => {
        const key = Topology.routingKey({ id: "e", eventName: name, senderService: "svc", tenantId })!
        const bindings = Topology.bindingKeys({ eventNames, tenantIds })
        const matched = bindings.some((b) => amqpMatches(b, key))
        if (admitted) assert.isTrue(matched, `${key} not matched by ${bindings.join(" ")}`)
        if (matched) assert.isTrue(admitted, `${key} matched by ${bindings.join(" ")} but not admitted`)
      }
    ), { numRuns: 500 })
  })

  it("names, keys and command expirations", () => {
    assert.isTrue(Topology.isValidPrefix("acme.herald"))
    assert.isFalse(Topology.isValidPrefix("a b"))
    assert.isFalse(Topology.isValidPrefix("x".repeat(65)))
    assert.strictEqual(Topology.commandQueue("herald", { service: "calculator", version: "1", command: "add" }), "herald.cmd.calculator.1.add")
    const spec = { service: "billing", version: "2", subscription: "audit", instance: "i-1" } as const
    assert.strictEqual(Topology.subscriptionQueue("herald", { ...spec, delivery: "shared", durable: true }), "herald.sub.billing.2.audit")
    assert.strictEqual(Topology.subscriptionQueue("herald", { ...spec, delivery: "broadcast", durable: false }), "herald.tmp.billing.2.audit.i-1")
    assert.isUndefined(Topology.subscriptionQueue("herald", { ...spec, instance: "a.b", delivery: "broadcast", durable: true }))
    assert.strictEqual(Topology.routingKey({ id: "e", eventName: "order.placed", senderService: "shop", tenantId: undefined }), "_.shop.order.placed")
    assert.isUndefined(Topology.routingKey({ id: "e", eventName: "bad*name", senderService: "shop" }))
    assert.deepStrictEqual(Topology.bindingKeys({}), ["#"])
    assert.deepStrictEqual(Topology.bindingKeys({ tenantIds: ["t1"] }), ["t1.*.#"])
    assert.deepStrictEqual(Topology.bindingKeys({ eventNames: ["a.b"] }), ["*.*.a.b"])
    assert.strictEqual(Topology.expirationOf(10_000, 7_000), "4000")
    assert.strictEqual(Topology.expirationOf(1_000, 7_000), "1000")
    assert.strictEqual(Topology.deliveryCountOf(false, undefined), 1)
    assert.strictEqual(Topology.deliveryCountOf(true, undefined), 2)
    assert.strictEqual(Topology.deliveryCountOf(true, { "x-delivery-count": 3 }), 4)
  })

  it("the delivery count is a safe integer, at least 1 (2 when redelivered), whatever x-delivery-count holds", () => {
    const header = fc.oneof(
      fc.anything(),
      fc.double(),
      fc.integer(),
      fc.constantFrom(2.5, -1, 1e300, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER - 1, "3", Number.NaN)
    )
    fc.assert(
      fc.property(fc.boolean(), header, (redelivered, count) => {
        const n = Topology.deliveryCountOf(redelivered, { "x-delivery-count": count })
        return Number.isSafeInteger(n) && n >= (redelivered ? 2 : 1) &&
          (Number.isSafeInteger(count) && (count as number) >= 0 && (count as number) < Number.MAX_SAFE_INTEGER ? n >= (count as number) + 1 : true)
      }),
      { numRuns: 2000 }
    )
  })

  it("acknowledgements are batched over the settled prefix and never cover a delivery in flight", async () => {
    const sent: Array<string> = []
    const acker = Topology.makeAcker({
      ack: (m, all) => void sent.push(`ack ${m.fields.deliveryTag}${all === true ? "+" : ""}`),
      nack: (m, _all, requeue) => void sent.push(`nack ${m.fields.deliveryTag}${requeue === true ? " requeue" : ""}`)
    })
    const msg = (deliveryTag: number) => ({ fields: { deliveryTag } }) as unknown as amqp.Message
    const ms = [1, 2, 3, 4, 5, 6].map(msg)
    for (const m of ms) acker.delivered(m)
    acker.ack(ms[0]!)
    acker.ack(ms[1]!)
    acker.nack(ms[2]!, true)
    acker.ack(ms[4]!)
    await Promise.resolve()
    assert.deepStrictEqual(sent, ["nack 3 requeue", "ack 2+", "ack 5"])
    acker.ack(ms[3]!)
    acker.ack(ms[5]!)
    acker.flush()
    assert.deepStrictEqual(sent.slice(3), ["ack 6+"])
  })
})

BridgeSuite.run("amqp", amqpLayer(), { routingRuns: 15 })
