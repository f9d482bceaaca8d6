import { assert, describe, it } from "@effect/vitest"
import { Result, Schema } from "effect"
import * as fc from "fast-check"
import { Codec, Envelope } from "../src/index.ts"

const str = fc.string({ minLength: 1, maxLength: 12 })
const opt = <A>(arb: fc.Arbitrary<A>) => fc.option(arb, { nil: undefined })
// whole milliseconds within years 1970..2200 survive the RFC 3339 round trip exactly
const instant = fc.integer({ min: 0, max: 7_258_118_400_000 })
const address = fc.record({
  service: str,
  version: fc.nat({ max: 99 }).map(String),
  target: opt(str),
  instance: opt(str)
})

const envelope: fc.Arbitrary<Envelope.Envelope> = fc.record({
  id: str,
  kind: fc.constantFrom("command" as const, "reply" as const, "event" as const),
  type: str,
  source: fc.string(),
  time: instant,
  correlationId: fc.string(),
  causationId: opt(fc.string()),
  traceparent: opt(fc.string()),
  tracestate: opt(fc.string()),
  principalId: opt(fc.string()),
  tenantId: opt(fc.string()),
  sender: address,
  receiver: opt(address),
  expiresAt: opt(instant),
  status: opt(fc.constantFrom("ok" as const, "error" as const, "defect" as const, "invalid-input" as const)),
  data: fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)) as unknown)
})

/** Drops keys whose value is undefined, the way the wire form does. */
const normalise = (e: Envelope.Envelope) => JSON.parse(JSON.stringify(e)) as unknown

describe("Codec.json", () => {
  it("decode ∘ encode = identity", () => {
    fc.assert(
      fc.property(envelope, (e) => {
        const decoded = Codec.json.decode(Codec.json.encode(e))
        assert.isTrue(Result.isSuccess(decoded))
        assert.deepStrictEqual(normalise(Result.getOrThrow(decoded)), normalise(e))
      }),
      { numRuns: 500 }
    )
  })

  it("the wire form is a CloudEvents 1.0 JSON object", () => {
    const bytes = Codec.json.encode({
      id: "m1",
      kind: "event",
      type: "order.placed",
      source: "herald:orders/1/i1",
      time: Date.UTC(2026, 0, 2, 3, 4, 5, 6),
      correlationId: "c1",
      tenantId: "acme",
      sender: { service: "orders", version: "1", instance: "i1" },
      data: { total: 5 }
    })
    assert.deepStrictEqual(JSON.parse(new TextDecoder().decode(bytes)), {
      specversion: "1.0",
      id: "m1",
      source: "herald:orders/1/i1",
      type: "order.placed",
      time: "2026-01-02T03:04:05.006Z",
      datacontenttype: "application/json",
      heraldkind: "event",
      correlationid: "c1",
      tenantid: "acme",
      senderservice: "orders",
      senderversion: "1",
      senderinstance: "i1",
      data: { total: 5 }
    })
  })

  it("the hand-written envelope check accepts exactly what the EnvelopeEncoded schema accepts", () => {
    const keys = Object.keys(Envelope.EnvelopeEncoded.fields)
    const oddValue = fc.oneof(
      fc.constantFrom<unknown>(undefined, null, "", "x", "1.0", "command", "ok", "application/json", 1, true, {}, []),
      fc.jsonValue()
    )
    const mutation = fc.tuple(fc.constantFrom(...keys, "extra"), oddValue)
    const schemaDecode = Schema.decodeUnknownResult(Envelope.EnvelopeEncoded)
    fc.assert(
      fc.property(envelope, fc.array(mutation, { maxLength: 3 }), (e, mutations) => {
        const wire: Record<string, unknown> = { ...Envelope.encode(e) }
        for (const [key, value] of mutations) {
          if (value === undefined) delete wire[key]
          else wire[key] = value
        }
        const viaSchema = schemaDecode(wire)
        const expected = Result.isSuccess(viaSchema) ? Envelope.fromWire(viaSchema.success) : "rejected"
        const actual = Envelope.decode(wire)
        assert.strictEqual(typeof actual === "string", typeof expected === "string", JSON.stringify(wire))
        if (typeof actual !== "string") assert.deepStrictEqual(normalise(actual), normalise(expected as Envelope.Envelope))
      }),
      { numRuns: 2000 }
    )
  })

  it("decoding arbitrary bytes never throws", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const r = Codec.json.decode(bytes)
        if (Result.isFailure(r)) assert.strictEqual(r.failure._tag, "DecodeError")
      }),
      { numRuns: 2000 }
    )
  })

  it("decoding arbitrary JSON never throws and rejects non-envelopes", () => {
    const enc = new TextEncoder()
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const r = Codec.json.decode(enc.encode(JSON.stringify(value)))
        assert.isTrue(Result.isFailure(r))
      }),
      { numRuns: 1000 }
    )
  })

  it("names the reason of a rejection", () => {
    const enc = new TextEncoder()
    const reasonOf = (bytes: Uint8Array) => {
      const r = Codec.json.decode(bytes)
      return Result.isFailure(r) ? r.failure.reason : "accepted"
    }
    assert.strictEqual(reasonOf(new Uint8Array([0xff, 0xfe])), "not UTF-8")
    assert.strictEqual(reasonOf(enc.encode("{nope")), "not JSON")
    assert.match(reasonOf(enc.encode(`{"specversion":"1.0"}`)), /not a Herald envelope/)
    const valid = JSON.parse(new TextDecoder().decode(Codec.json.encode({
      id: "m",
      kind: "event",
      type: "t",
      source: "s",
      time: 0,
      correlationId: "c",
      sender: { service: "a", version: "1" },
      data: null
    })))
    assert.match(reasonOf(enc.encode(JSON.stringify({ ...valid, time: "yesterday" }))), /time is not an RFC 3339 timestamp/)
    assert.match(
      reasonOf(enc.encode(JSON.stringify({ ...valid, receiverservice: "x" }))),
      /receiverservice and receiverversion must be given together/
    )
    assert.match(reasonOf(enc.encode(JSON.stringify({ ...valid, heraldkind: "gossip" }))), /heraldkind/)
  })
})
