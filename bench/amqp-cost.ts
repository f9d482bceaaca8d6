/**
 * Where the CPU of an AMQP fanout goes, RabbitMQ's included:
 * `node bench/amqp-cost.ts [rounds=3] [events=30000]` (Linux: reads the broker's CPU time from
 * `/proc/<beam.smp pid>/stat`, so RabbitMQ must run on this machine).
 *
 * It runs the fanout of `amqp-floor` (4 subscriber connections, each with a transient queue bound to
 * a topic exchange and a no-ack consumer; one publisher sending Herald event envelopes, persistent,
 * with the bridge's properties, on a confirm channel; at most 64 events outstanding), variants that
 * each change one design choice, `amqp-raw`'s design (all of them changed), and Herald itself
 * (`herald-amqp`'s fanout), interleaved for `rounds` rounds. For each it prints the median CPU µs per
 * delivery of RabbitMQ and of this Node process (publisher and subscribers), and the deliveries per
 * second. On 2 cores shared by both, their sum bounds the throughput.
 */
import * as amqp from "amqplib"
import type { ChannelModel, ConfirmChannel, Options } from "amqplib"
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
import * as Topology from "../src/internal/amqpTopology.ts"
import { heraldEnvelopes, plainJson } from "./lib/payloads.ts"
import { median } from "./lib/util.ts"
import { system as herald } from "./systems/herald-amqp.ts"

const rounds = Number(process.argv[2] ?? 3)
const events = Number(process.argv[3] ?? 30_000)
const URL = "amqp://guest:guest@127.0.0.1:5672"
const SUBSCRIBERS = 4
const WINDOW = 64

interface Variant {
  readonly id: string
  readonly what: string
  readonly confirm: boolean
  readonly persistent: boolean
  readonly exchange: "topic" | "fanout"
  readonly envelopes: boolean
}
const FLOOR: Variant = { id: "floor", what: "amqp-floor's fanout", confirm: true, persistent: true, exchange: "topic", envelopes: true }
const VARIANTS: ReadonlyArray<Variant> = [
  FLOOR,
  { ...FLOOR, id: "no-confirm", what: "published without publisher confirms", confirm: false },
  { ...FLOOR, id: "transient", what: "published non-persistent", persistent: false },
  { ...FLOOR, id: "fanout-exchange", what: "a fanout exchange instead of the topic exchange", exchange: "fanout" },
  { ...FLOOR, id: "plain-json", what: "`{sum}` bodies instead of Herald envelopes", envelopes: false },
  { id: "raw", what: "amqp-raw's design: all four of the above", confirm: false, persistent: false, exchange: "fanout", envelopes: false },
  { ...FLOOR, id: "herald", what: "herald-amqp (Herald on the AMQP bridge)" }
]

const pids = execFileSync("pgrep", ["-f", "beam.smp"]).toString().trim().split("\n")
const brokerTicks = (): number =>
  pids.reduce((sum, pid) => {
    // utime and stime: fields 14 and 15, after the parenthesised command name
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    return sum + Number(fields[11]) + Number(fields[12])
  }, 0)
const TICK_US = 1_000_000 / Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim())

const open = async (): Promise<ChannelModel> => {
  const conn = await amqp.connect(URL, { noDelay: true })
  Topology.coalesceWrites(conn)
  return conn
}

/** Keeps at most WINDOW events outstanding while `publish` sends `n` of them, until every subscriber got each. */
const drive = async (
  n: number,
  publish: (e: number) => void,
  counter: { readonly received: () => number; readonly wait: () => Promise<void> }
) => {
  const goal = counter.received() + SUBSCRIBERS * n
  for (let e = 0; e < n; e++) {
    while (SUBSCRIBERS * e - (counter.received() - (goal - SUBSCRIBERS * n)) >= SUBSCRIBERS * WINDOW) await counter.wait()
    publish(e)
  }
  while (counter.received() < goal) await counter.wait()
}

/** Herald's fanout, as `npm run bench` runs it (`bench/lib/herald.ts`). */
const setUpHerald = async (k: number) => {
  let received = 0
  let wake: (() => void) | undefined
  let failed: unknown
  const target = await herald.fanout(() => {
    received++
    const w = wake
    wake = undefined
    w?.()
  }, SUBSCRIBERS, { runId: `amqp-cost-${process.pid}-${k}`, timeoutMs: 5_000 })
  const counter = { received: () => received, wait: () => new Promise<void>((resolve) => (wake = resolve)) }
  const block = async (n: number) => {
    await drive(n, (e) => void target.publish(e)?.catch((err: unknown) => void (failed ??= err)), counter)
    if (failed !== undefined) throw failed
  }
  return { block, close: target.close }
}

/** Sets up one variant; returns a block of `n` events (each received by every subscriber) and its closing. */
const setUp = async (v: Variant, k: number) => {
  if (v.id === "herald") return setUpHerald(k)
  const name = `amqp-cost.${process.pid}.${k}`
  const payloads = v.envelopes ? heraldEnvelopes : plainJson
  let received = 0
  let wake: (() => void) | undefined
  const conns: Array<ChannelModel> = []
  for (let s = 0; s < SUBSCRIBERS; s++) {
    const conn = await open()
    conns.push(conn)
    const ch = await conn.createChannel()
    await ch.assertExchange(name, v.exchange, { durable: false, autoDelete: true })
    const { queue } = await ch.assertQueue(`${name}.${s}`, Topology.commandQueueOptions)
    await ch.bindQueue(queue, name, v.exchange === "topic" ? "*.*.added" : "")
    await ch.consume(queue, (msg) => {
      if (msg === null) return
      payloads.delivered(msg.content)
      received++
      const w = wake
      wake = undefined
      w?.()
    }, { noAck: true })
  }
  const conn = await open()
  conns.push(conn)
  const ch = v.confirm ? await conn.createConfirmChannel() : await conn.createChannel()
  const key = v.exchange === "topic" ? "_.publisher.added" : ""
  let seq = 0
  let failed: unknown
  const counter = { received: () => received, wait: () => new Promise<void>((resolve) => (wake = resolve)) }
  const block = async (n: number) => {
    await drive(n, (e) => {
      const options: Options.Publish = { persistent: v.persistent, contentType: Topology.CONTENT_TYPE, messageId: String(++seq), type: "added" }
      if (v.confirm) (ch as ConfirmChannel).publish(name, key, payloads.event(e), options, (err) => void (err && (failed ??= err)))
      else ch.publish(name, key, payloads.event(e), options)
    }, counter)
    if (failed !== undefined) throw failed
  }
  return { block, close: () => Promise.all(conns.map((c) => c.close().catch(() => undefined))) }
}

const samples = VARIANTS.map(() => ({ broker: [] as Array<number>, node: [] as Array<number>, rate: [] as Array<number> }))
for (let round = 0; round < rounds; round++) {
  for (let i = 0; i < VARIANTS.length; i++) {
    const { block, close } = await setUp(VARIANTS[i]!, round * VARIANTS.length + i)
    await block(2_000)
    const ticks0 = brokerTicks()
    const cpu0 = process.cpuUsage()
    const wall0 = performance.now()
    await block(events)
    const wall = performance.now() - wall0
    const cpu = process.cpuUsage(cpu0)
    const deliveries = SUBSCRIBERS * events
    samples[i]!.broker.push(((brokerTicks() - ticks0) * TICK_US) / deliveries)
    samples[i]!.node.push((cpu.user + cpu.system) / deliveries)
    samples[i]!.rate.push((deliveries / wall) * 1000)
    await close()
  }
}
console.log("| variant | RabbitMQ µs/delivery | Node µs/delivery | deliveries/s |\n|---|---:|---:|---:|")
VARIANTS.forEach((v, i) => {
  const s = samples[i]!
  console.log(`| ${v.id}: ${v.what} | ${median(s.broker).toFixed(1)} | ${median(s.node).toFixed(1)} | ${Math.round(median(s.rate)).toLocaleString("en")} |`)
})
