/**
 * The codec floor: CPU µs of the envelope work the design requires per operation, measured alone.
 * `node bench/floor.ts [iterations=200000]`.
 *
 * It captures the real bytes of one `calculator.add` call (command and reply) and one `added` event
 * on the memory bridge, then times, in a loop, what every Herald call and delivery must do with them
 * whatever the bridge: parse each envelope from bytes and serialise it back (`Codec.json`), and
 * validate the payloads with the contracts' compiled codecs (input and output of the call, the
 * event's payload).
 * No fibers, no bridge, no metrics: what any implementation of this design does per message with
 * the platform's `JSON.parse`/`JSON.stringify` (a hand-written serialiser would shave a fraction).
 * The README uses it to tell which benchmark targets are out of reach on a given machine.
 */
import { Effect, Layer } from "effect"
import { Bridge, Client, Codec, Event, MemoryBridge, Service } from "../src/index.ts"
import { Add, Added, Calculator } from "./lib/contracts.ts"
import { decodeEvent as decodePayload, envelopeOf as decodeEnvelope } from "./lib/payloads.ts"

const iterations = Number(process.argv[2] ?? 200_000)

const EMPTY: Uint8Array = new Uint8Array()
const captured = { command: EMPTY, reply: EMPTY, event: EMPTY }
/** The memory bridge, keeping the bytes of every request, reply and publish that crosses it. */
const Capturing = Layer.effect(
  Bridge.Bridge,
  Effect.map(MemoryBridge.make, (bridge): Bridge.BridgeShape => ({
    ...bridge,
    request: (address, bytes, expiresAt) => {
      captured.command = bytes
      return Effect.tap(bridge.request(address, bytes, expiresAt), (reply) => Effect.sync(() => (captured.reply = reply)))
    },
    publish: (route, bytes) => {
      captured.event = bytes
      return bridge.publish(route, bytes)
    }
  }))
)

const CalculatorLive = Service.toLayer(Calculator, { add: ({ a, b }) => Effect.succeed({ sum: a + b }) })
await Effect.runPromise(
  Effect.gen(function*() {
    const calc = yield* Client.make(Calculator)
    yield* calc.add({ a: 1, b: 2 })
    yield* Event.publish(Added, { sum: 3 })
  }).pipe(Effect.provide(CalculatorLive), Effect.provide(Capturing), Effect.scoped)
)

const { decodeInput, decodeOutput, encodeInput, encodeOutput } = Add.wire

/** CPU µs per iteration of `work`, after a warm-up of a tenth of the iterations. */
const perOp = (work: () => void): number => {
  for (let i = 0; i < iterations / 10; i++) work()
  const t0 = process.cpuUsage()
  for (let i = 0; i < iterations; i++) work()
  const t = process.cpuUsage(t0)
  return Number(((t.user + t.system) / iterations).toFixed(2))
}

const command = decodeEnvelope(captured.command)
// stamped in the command's millisecond, as most replies are under load (timestamps are cached per millisecond)
const reply = { ...decodeEnvelope(captured.reply), time: command.time }
const replyBytes = Codec.json.encode(reply)
const event = decodeEnvelope(captured.event)
// one call: the caller validates its input, encodes the command and decodes the reply and its
// output; the service decodes the command and its input, validates its output and encodes the reply
const call = perOp(() => {
  encodeInput({ a: 1, b: 2 })
  Codec.json.encode(command)
  decodeInput(decodeEnvelope(captured.command).data)
  encodeOutput({ sum: 3 })
  Codec.json.encode(reply)
  decodeOutput(decodeEnvelope(replyBytes).data)
})
// one publish: validate the payload, encode the envelope
const publish = perOp(() => {
  Added.encode({ sum: 3 })
  Codec.json.encode(event)
})
// one delivery: decode the envelope, validate the payload
const delivery = perOp(() => void decodePayload(decodeEnvelope(captured.event).data))

console.log(JSON.stringify({
  bytes: { command: captured.command.length, reply: captured.reply.length, event: captured.event.length },
  cpu_us: { call, publish, delivery, fanout_delivery: Number((delivery + publish / 4).toFixed(2)) }
}))
