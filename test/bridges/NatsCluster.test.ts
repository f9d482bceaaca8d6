/**
 * The NATS bridge on a real three-node cluster: three `nats-server` processes on free loopback
 * ports, routed to each other, JetStream clustered with the event stream on three replicas. The
 * service connects to node A, the caller to node B; node A is killed in the middle of a steady load
 * and calls and durable events must go on through the surviving nodes. The processes and their
 * storage directories belong to the test's scope and are removed even when it fails; the system
 * server on 4222 is never touched.
 */
import { assert, describe, it } from "@effect/vitest"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Clock, Effect, Layer, Schedule } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { createConnection, createServer, type AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as NatsBridge from "../../src/bridges/Nats.ts"
import { Client, Event, Service } from "../../src/index.ts"
import { Added, Calculator, CalculatorLive } from "../fixtures.ts"
import { deliveryLog, steadyLoad } from "./faults.ts"
import { eventSub, eventually, health } from "./support.ts"

/** The Debian package's server binary; the tests of the single server use the same one. */
const NATS_SERVER = "/usr/sbin/nats-server"

/** A TCP port nothing listens on right now. */
const freePort = Effect.promise(() =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
)

const portOpen = (port: number) =>
  Effect.promise(() =>
    new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: "127.0.0.1", port })
      socket.once("connect", () => (socket.destroy(), resolve(true)))
      socket.once("error", () => (socket.destroy(), resolve(false)))
    })
  )

/** Kills a server process (SIGKILL: no goodbye to its peers or clients) and waits until it is gone. */
const kill = (child: ChildProcess) =>
  Effect.promise(() =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve()
      child.once("exit", () => resolve())
      child.kill("SIGKILL")
    })
  )

interface Node {
  readonly name: string
  readonly server: string
  readonly url: string
  readonly process: ChildProcess
}

/**
 * Three clustered JetStream servers in a temporary directory, all owned by the current scope: the
 * processes are killed and the directory removed when it closes. Waits until JetStream answers.
 */
const cluster = Effect.gen(function*() {
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), "herald-nats-cluster-"))),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )
  const names = ["a", "b", "c"] as const
  const ports: Array<number> = []
  const routePorts: Array<number> = []
  for (let i = 0; i < 6; i++) (i < 3 ? ports : routePorts).push(yield* freePort)
  const nodes: Array<Node> = []
  for (const [i, name] of names.entries()) {
    const routes = routePorts.filter((_, j) => j !== i).map((p) => `nats://127.0.0.1:${p}`).join(",")
    const args = [
      "-a", "127.0.0.1", "-p", String(ports[i]), "--server_name", `herald-${name}`,
      "-js", "-sd", join(dir, name), "-l", join(dir, `${name}.log`),
      "--cluster_name", "herald-test", "--cluster", `nats://127.0.0.1:${routePorts[i]}`, "--routes", routes
    ]
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const child = spawn(NATS_SERVER, args, { stdio: "ignore" })
        // should this test process die without closing its scope, the server must not outlive it
        const orphan = () => void child.kill("SIGKILL")
        process.once("exit", orphan)
        child.once("exit", () => process.off("exit", orphan))
        return child
      }),
      kill
    )
    nodes.push({ name, server: `herald-${name}`, url: `127.0.0.1:${ports[i]}`, process: child })
  }
  for (const [i, node] of nodes.entries()) {
    yield* eventually(`node ${node.name} accepts connections`, portOpen(ports[i]!), 10_000)
  }
  // JetStream answers once the cluster has elected its meta leader
  const nc = yield* Effect.acquireRelease(Effect.promise(() => connect({ servers: nodes[0]!.url })), (nc) => Effect.promise(() => nc.close()))
  const jsReady = Effect.promise(() =>
    jetstreamManager(nc, { timeout: 1000 }).then((jsm) => jsm.getAccountInfo()).then(() => true, () => false)
  )
  yield* eventually("JetStream is clustered and ready", jsReady, 20_000)
  // a JetStream API request can time out while the cluster elects a leader (a node killed, a step-down):
  // retried for a few seconds before the test gives up
  const info = (stream: string) =>
    Effect.tryPromise(async () => (await jetstreamManager(nc, { timeout: 2000 })).streams.info(stream)).pipe(
      Effect.retry({ times: 15, schedule: Schedule.spaced("200 millis") }),
      Effect.orDie
    )
  /** Asks the stream's leader to step down until `server` leads it (each step-down elects at random). */
  const moveLeader = (stream: string, server: string) =>
    eventually(
      `${server} leads stream ${stream}`,
      Effect.flatMap(info(stream), (i) =>
        i.cluster?.leader === server
          ? Effect.succeed(true)
          : Effect.as(Effect.promise(() => nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`).then(() => undefined, () => undefined)), false)),
      20_000
    )
  return { nodes: [nodes[0]!, nodes[1]!, nodes[2]!] as const, ports, info, moveLeader }
})

describe("NatsBridge on a three-node cluster", () => {
  it.live("streamReplicas must be an integer from 1 to 5, checked before connecting", () =>
    Effect.gen(function*() {
      for (const streamReplicas of [0, 6, 1.5, Number.NaN]) {
        const bad = yield* Effect.flip(Layer.build(NatsBridge.layer({ servers: "127.0.0.1:1", streamReplicas })))
        assert.match(bad.message, /streamReplicas .* is not an integer from 1 to 5/)
      }
    }))

  it.live(
    "fault: calls and durable subscriptions continue through the surviving nodes when the service's node is killed",
    () =>
      Effect.gen(function*() {
        if (!existsSync(NATS_SERVER)) return assert.fail(`${NATS_SERVER} is not installed`)
        const { info, moveLeader, nodes: [a, b], ports } = yield* cluster
        const bridge = (servers: string) =>
          NatsBridge.layer({ servers, subjectPrefix: "cluster", streamReplicas: 3, reconnectMaxWait: "1 second", timeout: "10 seconds" })
        const Tick = Event.make("fault.tick", Added)
        const Sink = Service.make("fault-sink", "1", { subscriptions: [eventSub("ticks", "fault.tick", { durable: true })] })
        const deliveries = deliveryLog()
        const serving = yield* Layer.build(bridge(a.url))
        yield* Layer.build(
          Layer.mergeAll(
            CalculatorLive(),
            Service.toLayer(Sink, { ticks: (p) => Effect.andThen(Effect.sleep("20 millis"), deliveries.record(p.sum)) })
          )
        ).pipe(Effect.provide(serving))
        assert.strictEqual((yield* info("CLUSTER_EVENTS")).config.num_replicas, 3)
        // node A serves the service and leads the event stream: killing it loses both at once
        yield* moveLeader("CLUSTER_EVENTS", a.server)
        const calling = yield* Layer.build(bridge(b.url))
        const calc = yield* Client.make(Calculator).pipe(Effect.provide(calling))
        assert.deepStrictEqual(yield* calc.lookup({ key: "up" }, { timeout: "2 seconds" }), { value: "UP" })

        const load = yield* steadyLoad(calc, (sum) => Event.publish(Tick, { sum }).pipe(Effect.provide(calling)))
        yield* Effect.sleep("1 second")
        yield* kill(a.process)
        const killedAt = yield* Clock.currentTimeMillis
        assert.isFalse(yield* portOpen(ports[0]!), "node A is gone")
        yield* eventually("a call started after the kill succeeds", load.succeededSince(killedAt), 15_000)
        // the service's bridge moved to a surviving node it learnt from the cluster
        yield* eventually("the serving bridge is connected again", Effect.map(health(serving), (h) => h === "connected"), 10_000)
        yield* Effect.sleep("2 seconds")
        yield* load.stop
        const figures = yield* load.account("nats-cluster", deliveries, killedAt, 20_000)
        assert.isAbove(figures.outcomes["ok"] ?? 0, 10)
        // the service only knew node A: it serves now through a node it learnt from the cluster,
        // and the stream has a new leader among the survivors
        const leader = (yield* info("CLUSTER_EVENTS")).cluster?.leader
        assert.include(["herald-b", "herald-c"], leader)
      }),
    60_000
  )
})
