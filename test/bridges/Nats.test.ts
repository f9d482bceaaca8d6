/**
 * NATS-specific tests of the NATS bridge, against a real nats-server with JetStream on 127.0.0.1:4222.
 * The behavioural conformance suite (BridgeSuite) runs separately; this file covers durability,
 * wire interop with a plain NATS client, bad input on the wire, and a server restart.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Clock, Effect, Exit, Layer, Queue, Scope } from "effect"
import { execFileSync } from "node:child_process"
import { readdirSync, readFileSync, readlinkSync } from "node:fs"
import { createConnection } from "node:net"
import * as fc from "fast-check"
import * as NatsBridge from "../../src/bridges/Nats.ts"
import * as Subjects from "../../src/internal/natsSubjects.ts"
import * as BridgeSuite from "../../src/testing/BridgeSuite.ts"
import { Event, Service } from "../../src/index.ts"
import { Added, CalculatorLive } from "../fixtures.ts"
import {
  badBytes,
  durableKeeper,
  eventSub,
  eventually,
  handWritten,
  preFilterRouting,
  redeliveryAfterInterruptedShutdown,
  takeN
} from "./support.ts"
import { anyString, hintedEvent, natsMatches } from "../wireMatching.ts"
import { brokerFault } from "./faults.ts"

const SERVER = "127.0.0.1:4222"
/** A fresh subject prefix (and so a fresh stream) per run, so leftovers of other runs never interfere. */
const prefix = `ht${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`
const streamName = `${prefix.toUpperCase()}_EVENTS`
const natsLayer = () => NatsBridge.layer({ subjectPrefix: prefix })

afterAll(async () => {
  const nc = await connect({ servers: SERVER })
  const jsm = await jetstreamManager(nc)
  await jsm.streams.delete(streamName).catch(() => false)
  await nc.close()
})

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const json = (data: Uint8Array): Record<string, unknown> => JSON.parse(decoder.decode(data)) as Record<string, unknown>

/** A plain NATS connection, as a program without Herald would use. */
const rawClient = Effect.acquireRelease(
  Effect.promise(() => connect({ servers: SERVER })),
  (nc) => Effect.promise(() => nc.close())
)

const consumerInfo = (nc: NatsConnection, consumer: string) =>
  Effect.promise(async () => (await jetstreamManager(nc)).consumers.info(streamName, consumer))

/** Waits until a durable consumer has nothing pending and nothing unacknowledged. */
const allAcked = (nc: NatsConnection, consumer: string) =>
  eventually(
    `consumer ${consumer} acked everything`,
    Effect.map(consumerInfo(nc, consumer), (info) => info.num_ack_pending === 0 && info.num_pending === 0)
  )

// ---------------------------------------------------------------------------------------------
// stopping and starting the local nats-server, exactly as it was started
// ---------------------------------------------------------------------------------------------

interface ServerProcess {
  readonly exe: string
  readonly args: ReadonlyArray<string>
}

/** The running nats-server's executable and arguments, read from /proc, or undefined when there is none. */
function findServer(): ServerProcess | undefined {
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const exe = readlinkSync(`/proc/${pid}/exe`)
      if (!exe.endsWith("/nats-server")) continue
      const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((a) => a !== "").slice(1)
      const port = args.findIndex((a) => a === "-p" || a === "--port")
      if (port >= 0 && args[port + 1] !== "4222") continue
      return { exe, args }
    } catch {
      // the process ended or is not ours to read
    }
  }
  return undefined
}
/** The server to stop and start: the running one, or the standard Debian install started as documented. */
const natsServer: ServerProcess = findServer() ?? {
  exe: "/usr/sbin/nats-server",
  args: ["-a", "127.0.0.1", "-p", "4222", "-js", "-sd", "/var/lib/nats-server", "-l", "/var/log/nats-server.log"]
}

const portOpen = () =>
  new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port: 4222 })
    socket.once("connect", () => (socket.destroy(), resolve(true)))
    socket.once("error", () => (socket.destroy(), resolve(false)))
  })

const waitPort = async (open: boolean) => {
  for (let i = 0; i < 200; i++) {
    if ((await portOpen()) === open) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`port 4222 did not become ${open ? "open" : "closed"}`)
}

async function stopServer(server: ServerProcess) {
  execFileSync("start-stop-daemon", ["--stop", "--oknodo", "--retry", "5", "--exec", server.exe])
  await waitPort(false)
}

async function startServer(server: ServerProcess) {
  if (await portOpen()) return
  execFileSync("start-stop-daemon", ["--start", "--oknodo", "--background", "--exec", server.exe, "--", ...server.args])
  await waitPort(true)
}

describe("NatsBridge", () => {
  it.live("rejects a bad prefix and an unreachable server at build, without hanging", () =>
    Effect.gen(function*() {
      const bad = yield* Effect.flip(Layer.build(NatsBridge.layer({ subjectPrefix: "bad prefix" })))
      assert.match(bad.message, /subjectPrefix/)
      const start = yield* Clock.currentTimeMillis
      const down = yield* Effect.flip(Layer.build(NatsBridge.layer({ servers: "127.0.0.1:1", timeout: "1 second" })))
      assert.strictEqual(down._tag, "BridgeError")
      assert.match(down.message, /cannot connect to 127\.0\.0\.1:1/)
      assert.isBelow((yield* Clock.currentTimeMillis) - start, 2_500)
    }))

  it.live("a durable subscription gets the events published while its service was down, and acks them", () =>
    Effect.gen(function*() {
      const { got, publish, start } = yield* durableKeeper(natsLayer)
      const first = yield* start
      yield* publish(0)
      assert.deepStrictEqual((yield* takeN(got, 1)).map((d) => d.sum), [0])
      yield* Scope.close(first, Exit.void)

      for (const sum of [1, 2, 3, 4, 5]) yield* publish(sum)
      yield* Effect.sleep("200 millis")
      assert.strictEqual(yield* Queue.size(got), 0, "nobody is subscribed")

      const second = yield* start
      const redelivered = yield* takeN(got, 5)
      assert.deepStrictEqual([...new Set(redelivered.map((d) => d.sum))].sort(), [1, 2, 3, 4, 5])
      const nc = yield* rawClient
      yield* allAcked(nc, "keeper_1_ticks")
      assert.strictEqual((yield* consumerInfo(nc, "keeper_1_ticks")).num_redelivered, 0)
      yield* Scope.close(second, Exit.void)
    }))

  it.live("a durable event whose handler is interrupted at shutdown is redelivered", () =>
    Effect.gen(function*() {
      const again = yield* redeliveryAfterInterruptedShutdown(natsLayer)
      assert.strictEqual(again.sum, 5)
      // nats-server 2.9 reports a message nak'ed after its consumer's pull ended as a first delivery;
      // newer servers count it (2)
      assert.isAtLeast(again.deliveryCount, 1)
      yield* allAcked(yield* rawClient, "slow_1_work")
    }))

  it.live("interop: a plain NATS client invokes a command and reads the event it emits", () =>
    Effect.gen(function*() {
      const nc = yield* rawClient
      const events = nc.subscribe(`${prefix}.evt.acme_002Eeu.calculator.added`, { max: 1 })
      yield* Effect.promise(() => nc.flush())
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
      const answer = yield* Effect.promise(() => nc.request(`${prefix}.cmd.calculator.1.add`, command, { timeout: 5_000 }))
      const reply = json(answer.data)
      assert.strictEqual(reply.specversion, "1.0")
      assert.strictEqual(reply.heraldkind, "reply")
      assert.strictEqual(reply.heraldstatus, "ok")
      assert.strictEqual(reply.type, "add")
      assert.strictEqual(reply.causationid, "raw-call-1")
      assert.strictEqual(reply.correlationid, "raw-correlation")
      assert.strictEqual(reply.tenantid, "acme.eu")
      assert.strictEqual(reply.receiverservice, "raw")
      assert.deepStrictEqual(reply.data, { sum: 5 })

      const emitted = yield* Effect.promise(async () => {
        for await (const m of events) return m
        throw new Error("no event")
      }).pipe(Effect.timeout("5 seconds"))
      const event = json(emitted.data)
      assert.strictEqual(event.heraldkind, "event")
      assert.strictEqual(event.type, "added")
      assert.strictEqual(event.senderservice, "calculator")
      assert.strictEqual(event.tenantid, "acme.eu")
      assert.strictEqual(event.causationid, "raw-call-1")
      assert.deepStrictEqual(event.data, { sum: 5 })
      assert.strictEqual(emitted.headers?.get("Nats-Msg-Id"), event.id)
    }).pipe(Effect.provide(CalculatorLive().pipe(Layer.provideMerge(natsLayer())))))

  it.live("bad bytes on an event subject are dead-lettered and counted; the durable consumer goes on", () =>
    Effect.gen(function*() {
      const { dlq, got, payloads, robust, verify } = yield* badBytes
      yield* Effect.gen(function*() {
        const nc = yield* rawClient
        for (const payload of payloads) nc.publish(`${prefix}.evt._.mallory.wire.check`, encoder.encode(payload))
        yield* Effect.promise(() => nc.flush())
        yield* verify
        yield* allAcked(nc, "robust_1_wire")
        assert.strictEqual(yield* Queue.size(got), 0)
      }).pipe(Effect.provide(Layer.mergeAll(robust, dlq).pipe(Layer.provideMerge(natsLayer()))))
    }))

  it.live("tenant and event-name pre-filters route exactly the matching events, durable or not", () =>
    Effect.gen(function*() {
      yield* preFilterRouting(["t.1", "t2", "t3"])
      const nc = yield* rawClient
      const config = (yield* consumerInfo(nc, "router_1_kept")).config
      const filters = config.filter_subjects ?? [config.filter_subject]
      for (const f of filters) assert.include(f, `${prefix}.evt.`)
    }).pipe(Effect.provide(natsLayer())))

  it.live("a durable broadcast subscription has one consumer per instance, removed when the instance stops", () =>
    Effect.gen(function*() {
      const Fan = Service.make("fan", "1", { subscriptions: [eventSub("all", "fan.out", { durable: true, delivery: "broadcast" })] })
      const got = yield* Queue.unbounded<{ instance: number; sum: number }>()
      const fan = (instance: number) => Service.toLayer(Fan, { all: (p) => Queue.offer(got, { instance, sum: p.sum }) })
      const nc = yield* rawClient
      const consumers = Effect.promise(async () => {
        const names: Array<string> = []
        for await (const info of (await jetstreamManager(nc)).consumers.list(streamName)) {
          if (info.name.startsWith("fan_1_all_")) names.push(info.name)
        }
        return names
      })
      const scope = yield* Scope.make()
      const services = yield* Layer.buildWithScope(Layer.mergeAll(fan(0), fan(1)).pipe(Layer.provideMerge(natsLayer())), scope)
      assert.strictEqual((yield* consumers).length, 2)
      yield* Event.publish(Event.make("fan.out", Added), { sum: 7 }).pipe(Effect.provide(services))
      const copies = yield* takeN(got, 2)
      assert.deepStrictEqual(copies.map((c) => c.instance).sort(), [0, 1])
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(yield* consumers, [])
    }))

  it.live("a durable consumer deleted under a running subscription is recreated", () =>
    Effect.gen(function*() {
      const Tick = Event.make("phoenix.tick", Added)
      const Phoenix = Service.make("phoenix", "1", { subscriptions: [eventSub("ticks", "phoenix.tick", { durable: true })] })
      const got = yield* Queue.unbounded<number>()
      yield* Effect.gen(function*() {
        const nc = yield* rawClient
        yield* Effect.promise(async () => (await jetstreamManager(nc)).consumers.delete(streamName, "phoenix_1_ticks"))
        yield* eventually("the consumer is back", Effect.map(Effect.exit(consumerInfo(nc, "phoenix_1_ticks")), Exit.isSuccess))
        yield* Event.publish(Tick, { sum: 1 })
        assert.deepStrictEqual(yield* takeN(got, 1), [1])
      }).pipe(Effect.provide(Service.toLayer(Phoenix, { ticks: (p) => Queue.offer(got, p.sum) }).pipe(Layer.provideMerge(natsLayer()))))
    }))

  it.live(
    "fault: the bridge survives a server restart while calls and durable events flow",
    () =>
      brokerFault({
        name: "nats",
        bridge: natsLayer,
        stop: Effect.promise(() => stopServer(natsServer)),
        start: Effect.promise(() => startServer(natsServer))
      }),
    60_000
  )
})

describe("NATS wire mapping", () => {

  it("the tenant token is one valid token and decodes back to the tenant: injective", () => {
    fc.assert(fc.property(fc.option(anyString, { nil: undefined }), (tenant) => {
      const token = Subjects.encodeTenant(tenant)
      assert.match(token, /^[A-Za-z0-9_-]+$/)
      assert.strictEqual(Subjects.decodeTenant(token), tenant)
    }), { numRuns: 500 })
    assert.strictEqual(Subjects.encodeTenant(undefined), "_")
    assert.strictEqual(Subjects.encodeTenant(""), "__")
    assert.strictEqual(Subjects.encodeTenant("acme.eu"), "acme_002Eeu")
    assert.strictEqual(Subjects.encodeTenant("a_b"), "a_005Fb")
  })

  it("the pre-filter subjects, and their covering subject, admit every event the hints admit", () => {
    fc.assert(fc.property(
      hintedEvent(fc.oneof(anyString, fc.constantFrom("t1", "t.2"))),
      ({ admitted, eventNames, name, tenantId, tenantIds }) => {
        const subject = Subjects.eventSubject("h", { id: "e", eventName: name, senderService: "svc", tenantId })!
        const filters = Subjects.filterSubjects("h", { eventNames, tenantIds })
        const matched = filters.some((f) => natsMatches(f, subject))
        if (admitted) {
          assert.isTrue(matched, `${subject} not matched by ${filters.join(" ")}`)
          assert.isTrue(natsMatches(Subjects.coveringSubject(filters), subject))
        }
        if (matched) assert.isTrue(admitted, `${subject} matched by ${filters.join(" ")} but not admitted`)
      }
    ), { numRuns: 500 })
  })
})

BridgeSuite.run("nats", natsLayer(), { routingRuns: 15 })
