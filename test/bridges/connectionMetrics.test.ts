/**
 * `herald_bridge_connected` and `herald_bridge_reconnects_total` on every broker bridge: each bridge
 * reaches its (real, running) broker through a loopback TCP proxy; cutting the proxied connections
 * makes it lose and regain its connection without touching the broker.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric, References } from "effect"
import * as fc from "fast-check"
import { createConnection, createServer, type Socket } from "node:net"
import type { AddressInfo } from "node:net"
import * as AmqpBridge from "../../src/bridges/Amqp.ts"
import * as MemoryBridge from "../../src/bridges/Memory.ts"
import * as MqttBridge from "../../src/bridges/Mqtt.ts"
import * as NatsBridge from "../../src/bridges/Nats.ts"
import type { Bridge } from "../../src/Bridge.ts"
import type { BridgeError } from "../../src/BridgeError.ts"
import * as Metrics from "../../src/Metrics.ts"

/**
 * A TCP proxy to a broker port. `cut()` destroys every proxied connection and refuses new ones
 * until `restore()`; the broker itself is never touched.
 */
const proxy = (port: number) =>
  Effect.acquireRelease(
    Effect.callback<{
      readonly port: number
      readonly cut: () => void
      readonly restore: () => void
      readonly close: () => void
    }>((resume) => {
      const sockets = new Set<Socket>()
      let refusing = false
      const server = createServer((client) => {
        if (refusing) return void client.destroy()
        const upstream = createConnection({ host: "127.0.0.1", port })
        for (const s of [client, upstream]) {
          sockets.add(s)
          s.on("close", () => sockets.delete(s))
          s.on("error", () => s.destroy())
        }
        client.pipe(upstream).pipe(client)
        client.on("close", () => upstream.destroy())
        upstream.on("close", () => client.destroy())
      })
      server.listen(0, "127.0.0.1", () =>
        resume(Effect.succeed({
          port: (server.address() as AddressInfo).port,
          cut: () => {
            refusing = true
            for (const s of sockets) s.destroy()
          },
          restore: () => {
            refusing = false
          },
          close: () => {
            for (const s of sockets) s.destroy()
            server.close()
          }
        })))
    }),
    (p) => Effect.sync(p.close)
  )

const gauge = (bridge: string) => Metric.withAttributes(Metrics.bridgeConnected, { bridge })
const reconnects = (bridge: string) => Metric.withAttributes(Metrics.bridgeReconnects, { bridge })
const connectedNow = (bridge: string) => Effect.map(Metric.value(gauge(bridge)), (s) => s.value)
const reconnectsNow = (bridge: string) => Effect.map(Metric.value(reconnects(bridge)), (s) => s.count)

/** Polls until `check` holds (real time), failing with `what` after 15 s. */
const until = (what: string, check: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 300; i++) {
      if (yield* check) return
      yield* Effect.sleep("50 millis")
    }
    assert.fail(`timed out waiting until ${what}`)
  })

const scenario = (bridge: string, brokerPort: number, layerFor: (port: number) => Layer.Layer<Bridge, BridgeError>) =>
  Effect.gen(function*() {
    const p = yield* proxy(brokerPort)
    const before = yield* connectedNow(bridge)
    const reconnectsBefore = yield* reconnectsNow(bridge)
    yield* Effect.scoped(Effect.gen(function*() {
      yield* Layer.build(layerFor(p.port))
      assert.strictEqual(yield* connectedNow(bridge), before + 1, "connected once built")
      p.cut()
      yield* until("the loss is seen", Effect.map(connectedNow(bridge), (v) => v === before))
      assert.strictEqual(yield* reconnectsNow(bridge), reconnectsBefore, "no reconnect while refused")
      p.restore()
      yield* until("it reconnects", Effect.map(connectedNow(bridge), (v) => v === before + 1))
      assert.strictEqual(yield* reconnectsNow(bridge), reconnectsBefore + 1)
    }))
    assert.strictEqual(yield* connectedNow(bridge), before, "back to the previous value once closed")
  }).pipe(Effect.provideService(References.MinimumLogLevel, "None"))

describe("bridge connection metrics", () => {
  it.live("NATS: connected gauge drops on a lost connection and returns on reconnect, counted once", () =>
    scenario("nats", 4222, (port) =>
      NatsBridge.layer({ servers: `127.0.0.1:${port}`, subjectPrefix: `cm${crypto.randomUUID().slice(0, 8)}`, reconnectTimeWait: "100 millis" })), 30_000)

  it.live("MQTT: connected gauge drops on a lost connection and returns on reconnect, counted once", () =>
    scenario("mqtt", 1883, (port) =>
      MqttBridge.layer({ url: `mqtt://127.0.0.1:${port}`, topicPrefix: `cm${crypto.randomUUID().slice(0, 8)}`, reconnectPeriod: "200 millis" })), 30_000)

  it.live("AMQP: connected gauge drops on a lost connection and returns on reconnect, counted once", () =>
    scenario("amqp", 5672, (port) =>
      AmqpBridge.layer({
        urls: `amqp://guest:guest@127.0.0.1:${port}`,
        prefix: `cm${crypto.randomUUID().slice(0, 8)}`,
        reconnectInitialDelay: "100 millis"
      })), 30_000)

  it.effect("memory: connected while the layer lives", () =>
    Effect.gen(function*() {
      const before = yield* connectedNow("memory")
      yield* Effect.scoped(Effect.andThen(Layer.build(MemoryBridge.layer), Effect.gen(function*() {
        assert.strictEqual(yield* connectedNow("memory"), before + 1)
      })))
      assert.strictEqual(yield* connectedNow("memory"), before)
    }))
})

describe("Metrics.connectionTracker", () => {
  it.effect("gauge = 1 while up, reconnects = ups after the first, for any sequence of transitions", () =>
    Effect.promise(() =>
      fc.assert(fc.asyncProperty(fc.array(fc.boolean(), { maxLength: 40 }), (events) =>
        Effect.runPromise(Effect.gen(function*() {
          const bridge = `prop-${crypto.randomUUID()}`
          const tracker = Metrics.connectionTracker(bridge, yield* Effect.context<never>())
          let up = false
          let ups = 0
          for (const e of events) {
            if (e) {
              tracker.connected()
              if (!up) ups++
            } else tracker.disconnected()
            up = e
            assert.strictEqual(yield* connectedNow(bridge), up ? 1 : 0)
          }
          assert.strictEqual(yield* reconnectsNow(bridge), Math.max(0, ups - 1))
        }))), { numRuns: 100 })))
})
