/**
 * Hostile input on the wire path: every decoder a message meets (codec, envelope, the command
 * parsers, the caller's reply decoding, the subscription's payload decoding) gets arbitrary bytes,
 * deep nesting, huge strings, prototype keys and wrong types. Nothing throws, nothing pollutes a
 * prototype, and every message is either used or counted as rejected.
 *
 * `test/Codec.test.ts` holds the codec's own properties (identity, arbitrary bytes and JSON,
 * agreement with the `EnvelopeEncoded` schema); this file adds what an attacker would send.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Metric, Option, Queue, Ref, References, Result, Schema, Scope } from "effect"
import * as fc from "fast-check"
import {
  Bridge,
  Client,
  Codec,
  Command,
  isCallError,
  MemoryBridge,
  Runtime,
  Service,
  Subscription
} from "../src/index.ts"
import { MAX_DEPTH } from "../src/Codec.ts"

const HOSTILE_KEYS = ["__proto__", "constructor", "prototype", "toString", "valueOf", "hasOwnProperty", "a"]

/** JSON text whose objects use prototype-related keys at any depth (written as text: `__proto__` stays a key). */
const hostileJson: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.jsonValue({ maxDepth: 1 }).map((v) => JSON.stringify(v)),
    fc.array(tie("value"), { maxLength: 3 }).map((xs) => `[${xs.join(",")}]`),
    fc.array(fc.tuple(fc.constantFrom(...HOSTILE_KEYS), tie("value")), { maxLength: 4 })
      .map((kvs) => `{${kvs.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")}}`)
  )
})).value

const envelopeText = (fields: Record<string, string>, data: string) => {
  const base: Record<string, string> = {
    specversion: `"1.0"`,
    id: `"${crypto.randomUUID()}"`,
    source: `"herald:client/0"`,
    type: `"echo"`,
    time: `"2026-11-22T10:00:00.000Z"`,
    heraldkind: `"command"`,
    correlationid: `"c"`,
    senderservice: `"client"`,
    senderversion: `"0"`,
    receiverservice: `"hostile"`,
    receiverversion: `"1"`,
    ...fields
  }
  return `{${Object.entries(base).map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")},"data":${data}}`
}

const bytesOf = (text: string) => new Uint8Array(Buffer.from(text, "utf8"))

const nested = (depth: number, open: string, close: string, inner = "1") =>
  `${open.repeat(depth)}${inner}${close.repeat(depth)}`

const prototypeSnapshot = () => Object.getOwnPropertyNames(Object.prototype).sort().join(",")

/** Whether any object in a decoded value has a prototype other than `Object.prototype`, `Array.prototype` or null. */
const foreignPrototype = (value: unknown, seen = new Set<unknown>()): boolean => {
  if (typeof value !== "object" || value === null || seen.has(value)) return false
  seen.add(value)
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== Array.prototype && proto !== null) return true
  return Object.values(value).some((v) => foreignPrototype(v, seen))
}

/** Messages that are anything but a valid command for `hostile/1/echo`. */
const hostileMessage: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 256 }),
  fc.jsonValue().map((v) => bytesOf(JSON.stringify(v) ?? "null")),
  hostileJson.map(bytesOf),
  hostileJson.map((data) => bytesOf(envelopeText({}, data))),
  fc.tuple(fc.constantFrom("id", "type", "time", "heraldkind", "correlationid", "senderservice", "expirytime", "__proto__"), hostileJson)
    .map(([field, value]) => bytesOf(envelopeText({ [field]: value }, "{}"))),
  fc.integer({ min: MAX_DEPTH - 5, max: 3 * MAX_DEPTH }).map((d) => bytesOf(envelopeText({}, nested(d, "[", "]")))),
  fc.integer({ min: 1, max: 64 }).map((kib) => bytesOf(envelopeText({}, JSON.stringify({ s: "\u00e9".repeat(kib * 512) }))))
)

const Echo = Command.make("echo", {
  input: Schema.Struct({ n: Schema.Finite }),
  output: Schema.Struct({ n: Schema.Finite })
})
const Bag = Command.make("bag", {
  input: Schema.Record(Schema.String, Schema.Unknown),
  output: Schema.Record(Schema.String, Schema.Unknown)
})
const Hostile = Service.make("hostile", "1", { commands: [Echo, Bag] })

const rejectedTotal = (service: string) =>
  Effect.map(
    Effect.forEach(
      ["undecodable", "unexpected", "expired", "too-large", "invalid-payload", "overflow"],
      (reason) => Metric.value(Metric.withAttributes(Runtime.rejectedMessages, { reason, service }))
    ),
    (states) => states.reduce((sum, s) => sum + s.count, 0)
  )

const quiet = Effect.provideService(References.MinimumLogLevel, "None")

const withMemory = <A, E>(effect: Effect.Effect<A, E, Bridge.Bridge | Scope.Scope>) =>
  Effect.scoped(Effect.flatMap(Layer.build(MemoryBridge.layer), (ctx) => Effect.provide(effect, ctx)))

describe("hostile input", () => {
  it("JSON nested 100,000 levels deep is rejected with a DecodeError, not a stack overflow", () => {
    for (const [open, close] of [["[", "]"], ['{"a":', "}"]] as const) {
      const result = Codec.json.decode(bytesOf(envelopeText({}, nested(100_000, open, close))))
      assert.isTrue(Result.isFailure(result))
      assert.include(Result.isFailure(result) ? result.failure.reason : "", `deeper than ${MAX_DEPTH}`)
    }
    // brackets inside strings do not count
    const inString = Codec.json.decode(bytesOf(envelopeText({}, JSON.stringify("[".repeat(100_000)))))
    assert.isTrue(Result.isSuccess(inString))
    const atLimit = Codec.json.decode(bytesOf(envelopeText({}, nested(MAX_DEPTH - 1, "[", "]"))))
    assert.isTrue(Result.isSuccess(atLimit), "the envelope plus data at the limit decodes")
    // and what is accepted can be encoded again (dead letters re-encode the event)
    if (Result.isSuccess(atLimit)) assert.isAbove(Codec.json.encode(atLimit.success).length, 0)
  })

  it("any nesting depth: decoding never throws and accepts exactly the messages within MAX_DEPTH", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4 * MAX_DEPTH }), fc.constantFrom(["[", "]"], ['{"k":', "}"]), (depth, [o, c]) => {
        const result = Codec.json.decode(bytesOf(envelopeText({}, nested(depth, o!, c!))))
        // the envelope itself is one level
        assert.strictEqual(Result.isSuccess(result), depth + 1 <= MAX_DEPTH)
      }),
      { numRuns: 200 }
    )
  })

  it("prototype keys anywhere: nothing throws, Object.prototype is untouched, decoded values carry no foreign prototype", () => {
    const before = prototypeSnapshot()
    const decodeRecord = Bag.wire.decodeInput
    const decodeStruct = Echo.wire.decodeInput
    const payload = Schema.decodeUnknownResult(Schema.toCodecJson(Schema.Record(Schema.String, Schema.Json)))
    fc.assert(
      fc.property(hostileJson, (data) => {
        const decoded = Codec.json.decode(bytesOf(envelopeText({ __proto__: `{"polluted":true}` }, data)))
        assert.isTrue(Result.isSuccess(decoded))
        if (Result.isFailure(decoded)) return
        const env = decoded.success
        assert.isFalse(foreignPrototype(env.data))
        for (const parsed of [decodeRecord(env.data), decodeStruct(env.data), payload(env.data)]) {
          if (Result.isSuccess(parsed)) assert.isFalse(foreignPrototype(parsed.success))
        }
        assert.isUndefined(({} as Record<string, unknown>).polluted)
        assert.strictEqual(prototypeSnapshot(), before)
      }),
      { numRuns: 300 }
    )
  })

  it("the command parsers and the subscription payload parser never throw on values of any type", () => {
    const sub = Subscription.make("any", { filter: {}, payload: Schema.Struct({ n: Schema.Int }), delivery: "shared" })
    const payload = Schema.decodeUnknownResult(sub.payloadCodec)
    fc.assert(
      fc.property(fc.anything({ withBigInt: true, withMap: true, withSet: true, withTypedArray: true }), (value) => {
        for (const parse of [Echo.wire.decodeInput, Echo.wire.decodeOutput, Bag.wire.decodeInput, Bag.wire.decodeOutput, payload]) {
          const result = parse(value)
          assert.isTrue(Result.isSuccess(result) || Result.isFailure(result))
        }
      }),
      { numRuns: 500 }
    )
  })

  it.live("every hostile message sent to a command is answered or counted as rejected, and the service goes on", () =>
    withMemory(Effect.gen(function*() {
      yield* Layer.build(Service.toLayer(Hostile, { echo: (x) => Effect.succeed(x), bag: (x) => Effect.succeed(x) }))
      const bridge = yield* Bridge.Bridge
      const context = yield* Effect.context<Bridge.Bridge>()
      const client = yield* Client.make(Hostile, { timeout: "2 seconds" })
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(hostileMessage, (bytes) =>
            Effect.runPromise(Effect.gen(function*() {
              const before = yield* rejectedTotal(Hostile.name)
              const reply = yield* bridge.request({ service: "hostile", version: "1", command: "echo" }, bytes, Number.MAX_SAFE_INTEGER)
                .pipe(Effect.timeoutOption("10 millis"))
              const counted = (yield* rejectedTotal(Hostile.name)) - before
              assert.strictEqual(Option.isSome(reply) ? 1 : 0, 1 - counted, "answered xor counted once")
              if (Option.isSome(reply)) {
                const decoded = Codec.json.decode(reply.value)
                assert.isTrue(Result.isSuccess(decoded) && decoded.success.kind === "reply")
              }
              assert.deepStrictEqual(yield* client.echo({ n: 1 }), { n: 1 })
            }).pipe(Effect.scoped, Effect.provide(context), quiet))
          ),
          { numRuns: 200 }
        )
      )
      assert.strictEqual(yield* bridge.pendingRequests, 0)
    })), 60_000)

  it.live("a caller receiving hostile replies fails with a typed error, never a defect, and counts what it cannot decode", () =>
    withMemory(Effect.gen(function*() {
      const bridge = yield* Bridge.Bridge
      const next = yield* Ref.make<Uint8Array>(new Uint8Array())
      yield* bridge.serve({ service: "hostile", version: "1", command: "echo" }, (message) =>
        Effect.flatMap(Ref.get(next), (bytes) => Effect.orDie(message.reply(bytes))))
      const client = yield* Client.make(Hostile, { timeout: "2 seconds" })
      const undecodable = Metric.withAttributes(Runtime.rejectedMessages, { reason: "undecodable", service: "client" })
      const context = yield* Effect.context<Bridge.Bridge>()
      const replies = fc.oneof(
        hostileMessage,
        fc.tuple(fc.constantFrom("ok", "error", "defect", "invalid-input", "bogus"), hostileJson).map(([status, data]) =>
          bytesOf(envelopeText({ heraldkind: `"reply"`, heraldstatus: `"${status}"` }, data))
        )
      )
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(replies, (bytes) =>
            Effect.runPromise(Effect.gen(function*() {
              yield* Ref.set(next, bytes)
              const before = (yield* Metric.value(undecodable)).count
              const exit = yield* Effect.exit(client.echo({ n: 1 }))
              const undecodableNow = (yield* Metric.value(undecodable)).count - before
              assert.strictEqual(undecodableNow, Result.isFailure(Codec.json.decode(bytes)) ? 1 : 0)
              if (Exit.isFailure(exit)) {
                const error = Cause.findErrorOption(exit.cause)
                assert.isTrue(Option.isSome(error) && isCallError(error.value), Cause.pretty(exit.cause))
              }
            }).pipe(Effect.scoped, Effect.provide(context), quiet))
          ),
          { numRuns: 200 }
        )
      )
    })), 60_000)

  it.live("every hostile event reaching a subscription is handled or counted as rejected", () =>
    withMemory(Effect.gen(function*() {
      const Watch = Subscription.make("watch", { filter: { eventName: "x.y" }, payload: Schema.Struct({ n: Schema.Int }), delivery: "shared" })
      const Watcher = Service.make("watcher", "1", { subscriptions: [Watch] })
      const handled = yield* Queue.unbounded<number>()
      yield* Layer.build(Service.toLayer(Watcher, { watch: ({ n }) => Queue.offer(handled, n) }))
      const bridge = yield* Bridge.Bridge
      const context = yield* Effect.context<Bridge.Bridge>()
      const events = fc.oneof(
        hostileMessage,
        hostileMessage.map((b) => bytesOf(envelopeText({ heraldkind: `"event"`, type: `"x.y"` }, Buffer.from(b).toString("utf8")))),
        fc.oneof(fc.integer(), hostileJson).map((data) =>
          bytesOf(envelopeText({ heraldkind: `"event"`, type: `"x.y"` }, `{"n":${typeof data === "number" ? data : data}}`))
        )
      )
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(events, (bytes) =>
            Effect.runPromise(Effect.gen(function*() {
              const before = yield* rejectedTotal(Watcher.name)
              yield* bridge.publish({ id: crypto.randomUUID(), eventName: "x.y", senderService: "client" }, bytes)
              yield* Effect.sleep("1 millis")
              const got = (yield* Queue.clear(handled)).length
              const counted = (yield* rejectedTotal(Watcher.name)) - before
              const decoded = Codec.json.decode(bytes)
              const filteredOut = Result.isSuccess(decoded) && decoded.success.kind === "event" && decoded.success.type !== "x.y"
              assert.strictEqual(got + counted, filteredOut ? 0 : 1, "handled or counted, exactly once")
            }).pipe(Effect.scoped, Effect.provide(context), quiet))
          ),
          { numRuns: 300 }
        )
      )
    })), 60_000)
})
