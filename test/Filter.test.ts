import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  compile,
  type DataPattern,
  eventNames,
  type Filter,
  FilterError,
  type FilterTarget,
  matches,
  type Pattern,
  tenantIds,
  validate
} from "../src/Filter.ts"

const target = (over: Partial<FilterTarget> = {}): FilterTarget => ({
  eventName: "order.created",
  sender: { service: "orders", version: "1" },
  data: {},
  ...over
})

const withData = (data: unknown): FilterTarget => target({ data })

/** Matches a single data field `x` with `pattern` against the value `value` (absent when `undefined`). */
const field = (pattern: Pattern, value?: unknown): boolean =>
  matches({ data: { x: pattern } }, withData(value === undefined ? {} : { x: value }))

const errorOf = (input: unknown): FilterError => {
  try {
    validate(input)
  } catch (e) {
    if (e instanceof FilterError) return e
    throw e
  }
  throw new Error("expected validate to throw a FilterError")
}

// ---------------------------------------------------------------------------------------------------------
// Operators
// ---------------------------------------------------------------------------------------------------------

describe("operators", () => {
  it("empty filter and absent keys match everything", () => {
    expect(matches({}, target())).toBe(true)
    expect(matches({ data: {} }, withData(42))).toBe(true)
    expect(matches({ sender: {} }, target())).toBe(true)
  })

  it("exact scalars are strict", () => {
    expect(field("a", "a")).toBe(true)
    expect(field("a", "A")).toBe(false)
    expect(field(1, 1)).toBe(true)
    expect(field(1, "1")).toBe(false)
    expect(field("1", 1)).toBe(false)
    expect(field(true, true)).toBe(true)
    expect(field(true, 1)).toBe(false)
    expect(field(null, null)).toBe(true)
    expect(field(null)).toBe(false)
    expect(field(0, -0)).toBe(true)
    expect(field(["a", 2, null], 2)).toBe(true)
    expect(field(["a", "b", "c", "d"], "d")).toBe(true)
    expect(field(["a", "b", "c", "d"], "e")).toBe(false)
  })

  it("arrays in data match when any element matches", () => {
    expect(field("b", ["a", "b"])).toBe(true)
    expect(field("c", ["a", "b"])).toBe(false)
    expect(field("a", [])).toBe(false)
    expect(field([{ numeric: [">", 5] }], [1, 7])).toBe(true)
    expect(field("a", [["a"]])).toBe(false) // nested arrays are not flattened
    expect(field([{ "anything-but": "a" }], ["a", "b"])).toBe(true)
    expect(field([{ "anything-but": "a" }], ["a"])).toBe(false)
    expect(field([{ "anything-but": "a" }], [])).toBe(false)
  })

  it("objects never match value matchers", () => {
    expect(field([{ "anything-but": "a" }], { y: 1 })).toBe(false)
    expect(field([{ prefix: "" }], { y: 1 })).toBe(false)
    expect(field([{ exists: true }], { y: 1 })).toBe(true)
  })

  it("prefix and suffix apply to strings only", () => {
    expect(field([{ prefix: "ord" }], "order")).toBe(true)
    expect(field([{ prefix: "ord" }], "Order")).toBe(false)
    expect(field([{ prefix: "" }], "")).toBe(true)
    expect(field([{ prefix: "1" }], 12)).toBe(false)
    expect(field([{ suffix: "er" }], "order")).toBe(true)
    expect(field([{ suffix: "er" }], "orders")).toBe(false)
    expect(field([{ suffix: "2" }], 12)).toBe(false)
    expect(field([{ prefix: "a" }])).toBe(false)
  })

  it("anything-but requires a present value", () => {
    expect(field([{ "anything-but": "a" }], "b")).toBe(true)
    expect(field([{ "anything-but": "a" }], "a")).toBe(false)
    expect(field([{ "anything-but": "a" }])).toBe(false)
    expect(field([{ "anything-but": "a" }], null)).toBe(true)
    expect(field([{ "anything-but": null }], null)).toBe(false)
    expect(field([{ "anything-but": 1 }], "1")).toBe(true)
    expect(field([{ "anything-but": ["a", "b"] }], "b")).toBe(false)
    expect(field([{ "anything-but": ["a", "b"] }], "c")).toBe(true)
    expect(field([{ "anything-but": { prefix: "ord" } }], "order")).toBe(false)
    expect(field([{ "anything-but": { prefix: "ord" } }], "user")).toBe(true)
    expect(field([{ "anything-but": { prefix: "1" } }], 12)).toBe(true)
    expect(field([{ "anything-but": { suffix: "er" } }], "order")).toBe(false)
    expect(field([{ "anything-but": { suffix: "er" } }], "orders")).toBe(true)
    expect(matches({ tenantId: [{ "anything-but": "t1" }] }, target())).toBe(false)
    expect(matches({ tenantId: [{ "anything-but": "t1" }] }, target({ tenantId: "t2" }))).toBe(true)
  })

  it("numeric compares numbers only", () => {
    expect(field([{ numeric: [">", 100] }], 101)).toBe(true)
    expect(field([{ numeric: [">", 100] }], 100)).toBe(false)
    expect(field([{ numeric: [">=", 100] }], 100)).toBe(true)
    expect(field([{ numeric: ["<", 0] }], -0.5)).toBe(true)
    expect(field([{ numeric: ["<=", 0] }], 0)).toBe(true)
    expect(field([{ numeric: ["=", 1.5] }], 1.5)).toBe(true)
    expect(field([{ numeric: ["=", 1] }], "1")).toBe(false)
    expect(field([{ numeric: [">", 100] }], "101")).toBe(false)
    expect(field([{ numeric: [">", 0] }], true)).toBe(false)
    expect(field([{ numeric: [">", -1] }], null)).toBe(false)
    expect(field([{ numeric: [">", 0, "<=", 5] }], 5)).toBe(true)
    expect(field([{ numeric: [">", 0, "<=", 5] }], 0)).toBe(false)
    expect(field([{ numeric: [">", 0, "<=", 5] }], 6)).toBe(false)
    expect(field([{ numeric: [">=", 3, "<", 3] }], 3)).toBe(false)
    expect(matches({ data: { order: { total: [{ numeric: [">", 100] }] } } }, withData({ order: { total: 150 } }))).toBe(true)
  })

  it("exists distinguishes absent from present (null and [] are present)", () => {
    expect(field([{ exists: true }], 0)).toBe(true)
    expect(field([{ exists: true }], null)).toBe(true)
    expect(field([{ exists: true }], [])).toBe(true)
    expect(field([{ exists: true }])).toBe(false)
    expect(field([{ exists: false }])).toBe(true)
    expect(field([{ exists: false }], null)).toBe(false)
    expect(field([{ exists: false }], [])).toBe(false)
    expect(field([{ exists: false }, "a"], "a")).toBe(true)
    expect(field([{ exists: false }, { exists: true }])).toBe(true)
    expect(field([{ exists: true }, { exists: false }], 1)).toBe(true)
    expect(matches({ receiver: { service: [{ exists: false }] } }, target())).toBe(true)
    expect(matches({ receiver: { service: [{ exists: true }] } }, target())).toBe(false)
    expect(matches({ tenantId: [{ exists: false }] }, target({ tenantId: "t1" }))).toBe(false)
    // a nested pattern over a missing / non-object value only matches exists:false leaves
    expect(matches({ data: { a: { b: [{ exists: false }] } } }, withData({}))).toBe(true)
    expect(matches({ data: { a: { b: [{ exists: false }] } } }, withData({ a: 5 }))).toBe(true)
    expect(matches({ data: { a: { b: [{ exists: false }] } } }, withData({ a: { b: 1 } }))).toBe(false)
    expect(matches({ data: { a: { b: [{ exists: true }] } } }, withData({ a: [{ b: 1 }] }))).toBe(false)
    expect(matches({ data: { a: [{ exists: false }] } }, withData("a scalar payload"))).toBe(true)
  })

  it("equals-ignore-case", () => {
    expect(field([{ "equals-ignore-case": "Order" }], "oRDER")).toBe(true)
    expect(field([{ "equals-ignore-case": "Order" }], "orders")).toBe(false)
    expect(field([{ "equals-ignore-case": "1" }], 1)).toBe(false)
    expect(matches({ eventName: [{ "equals-ignore-case": "ORDER.CREATED" }] }, target())).toBe(true)
  })

  it("wildcard treats regex metacharacters literally and supports \\* escapes", () => {
    const w = (pattern: string, value?: unknown) => field([{ wildcard: pattern }], value)
    expect(w("order.*", "order.created")).toBe(true)
    expect(w("order.*", "orderXcreated")).toBe(false)
    expect(w("*", "")).toBe(true)
    expect(w("a*", "a")).toBe(true)
    expect(w("*b*", "abc")).toBe(true)
    expect(w("a*b*c", "abbbc")).toBe(true)
    expect(w("a*b*c", "acb")).toBe(false)
    expect(w("ab*ba", "aba")).toBe(false) // segments must not overlap
    expect(w("a+b", "a+b")).toBe(true)
    expect(w("a+b", "aab")).toBe(false)
    expect(w("(a)*", "(a)x")).toBe(true)
    expect(w("(a)*", "a")).toBe(false)
    expect(w("[x]|y?^$", "[x]|y?^$")).toBe(true)
    expect(w("a\\*b", "a*b")).toBe(true)
    expect(w("a\\*b", "axb")).toBe(false)
    expect(w("a\\\\*", "a\\anything")).toBe(true)
    expect(w("*\\*", "x*")).toBe(true)
    expect(w("*\\*", "x")).toBe(false)
    expect(w("line*end", "line\nend")).toBe(true)
    expect(w("*", 5)).toBe(false)
    expect(w("*")).toBe(false)
  })

  it("prototype keys in data are ordinary own keys", () => {
    const proto = JSON.parse('{"__proto__": {"polluted": 1}}') as unknown
    const protoFilter = validate(JSON.parse('{"data": {"__proto__": {"polluted": [1]}}}'))
    expect(matches(protoFilter, withData(proto))).toBe(true)
    expect(matches(protoFilter, withData({}))).toBe(false)
    expect(matches({ data: { constructor: [{ exists: true }] } }, withData({}))).toBe(false)
    expect(matches({ data: { constructor: [{ exists: false }] } }, withData({}))).toBe(true)
    expect(matches({ data: { toString: [{ exists: true }] } }, withData({}))).toBe(false)
    expect(matches({ data: { constructor: "x" } }, withData({ constructor: "x" }))).toBe(true)
    expect(matches({ data: { constructor: { name: [{ exists: true }] } } }, withData({}))).toBe(false)
    expect(matches({ data: { length: [{ exists: true }] } }, withData("abc"))).toBe(false)
  })

  it("sender / receiver / principal / tenant fields", () => {
    const t = target({
      sender: { service: "orders", version: "2", target: "eu", instance: "i-1" },
      receiver: { service: "billing", version: "1" },
      principalId: "alice",
      tenantId: "t1"
    })
    expect(matches({ sender: { service: "orders", version: "2", target: "eu", instance: "i-1" } }, t)).toBe(true)
    expect(matches({ sender: { version: "1" } }, t)).toBe(false)
    expect(matches({ receiver: { service: "billing", instance: [{ exists: false }] } }, t)).toBe(true)
    expect(matches({ receiver: { service: "orders" } }, t)).toBe(false)
    expect(matches({ receiver: { service: "billing" } }, target())).toBe(false)
    expect(matches({ principalId: ["bob", "alice"], tenantId: "t1" }, t)).toBe(true)
    expect(matches({ principalId: "alice" }, target())).toBe(false)
  })

  it("combines with AND, lists with OR and $or as union", () => {
    const f: Filter = {
      eventName: [{ prefix: "order." }],
      $or: [{ tenantId: "t1" }, { data: { vip: true } }]
    }
    expect(matches(f, target({ tenantId: "t1" }))).toBe(true)
    expect(matches(f, target({ data: { vip: true } }))).toBe(true)
    expect(matches(f, target({ tenantId: "t2" }))).toBe(false)
    expect(matches(f, target({ eventName: "user.created", tenantId: "t1" }))).toBe(false)
    const nested: Filter = { $or: [{ $or: [{ tenantId: "a" }, { tenantId: "b" }] }, { tenantId: "c" }] }
    expect(["a", "b", "c", "d"].map((tenantId) => matches(nested, target({ tenantId })))).toEqual([true, true, true, false])
  })

  it("compile / matches accept compiled filters and cache raw ones", () => {
    const f: Filter = { eventName: "order.created" }
    const c = compile(f)
    expect(c.filter).toEqual(f)
    expect(Object.isFrozen(c.filter)).toBe(true)
    expect(matches(c, target())).toBe(true)
    expect(c.matches(target({ eventName: "x" }))).toBe(false)
    expect(matches(f, target())).toBe(true)
    expect(matches(f, target())).toBe(true)
  })
})

// ---------------------------------------------------------------------------------------------------------
// eventNames / tenantIds
// ---------------------------------------------------------------------------------------------------------

describe("eventNames / tenantIds", () => {
  it("exact strings give a finite set, other matchers give undefined", () => {
    expect(eventNames({})).toBeUndefined()
    expect(eventNames({ eventName: "a" })).toEqual(["a"])
    expect(eventNames({ eventName: ["a", "b", "a", 1, null] })).toEqual(["a", "b"])
    expect(eventNames({ eventName: 7 })).toEqual([])
    expect(eventNames({ eventName: ["a", { prefix: "b" }] })).toBeUndefined()
    expect(eventNames({ eventName: [{ exists: true }] })).toBeUndefined()
    expect(tenantIds({ tenantId: ["t1", "t2"], eventName: [{ wildcard: "*" }] })).toEqual(["t1", "t2"])
    expect(tenantIds({ tenantId: [{ "anything-but": "t1" }] })).toBeUndefined()
  })

  it("handles $or", () => {
    expect(eventNames({ $or: [{ eventName: "a" }, { eventName: ["b", "c"] }] })).toEqual(["a", "b", "c"])
    expect(eventNames({ $or: [{ eventName: "a" }, { tenantId: "t" }] })).toBeUndefined()
    expect(eventNames({ eventName: ["a", "b"], $or: [{ tenantId: "t" }, { eventName: "c" }] })).toEqual(["a", "b"])
    expect(eventNames({ eventName: ["a", "b"], $or: [{ eventName: "b" }, { eventName: "c" }] })).toEqual(["b"])
    expect(eventNames({ $or: [{ $or: [{ eventName: "a" }, { eventName: "b" }] }, { eventName: "a" }] })).toEqual(["a", "b"])
  })
})

// ---------------------------------------------------------------------------------------------------------
// validate
// ---------------------------------------------------------------------------------------------------------

describe("validate", () => {
  const cases: ReadonlyArray<readonly [string, unknown, string]> = [
    ["non-object filter", "x", "filter: expected a filter object"],
    ["array filter", [], "filter: expected a filter object"],
    ["unknown top-level key", { eventname: "a" }, `filter: unknown key "eventname"`],
    ["undefined value", { tenantId: undefined }, "tenantId: expected a scalar or an array of matchers, got undefined"],
    ["unknown address key", { sender: { name: "x" } }, `sender: unknown key "name"`],
    ["non-object address", { receiver: "x" }, "receiver: expected an object"],
    ["bare matcher object", { eventName: { prefix: "a" } }, "eventName: expected a scalar or an array of matchers (wrap"],
    ["empty matcher array", { data: { a: [] } }, "data.a: a pattern must not be an empty array"],
    ["unknown matcher", { eventName: [{ regex: "a" }] }, `eventName: expected a matcher object with exactly one of the keys`],
    ["matcher with extra keys", { eventName: [{ prefix: "a", suffix: "b" }] }, "eventName: expected a matcher object"],
    ["empty matcher object", { eventName: [{}] }, "eventName: expected a matcher object"],
    ["prefix operand", { sender: { service: [{ prefix: 1 }] } }, "sender.service: prefix expects a string, got 1"],
    ["suffix operand", { data: { a: [{ suffix: null }] } }, "data.a: suffix expects a string, got null"],
    ["equals-ignore-case operand", { eventName: [{ "equals-ignore-case": 1 }] }, "eventName: equals-ignore-case expects a string"],
    ["wildcard operand", { eventName: [{ wildcard: true }] }, "eventName: wildcard expects a string"],
    ["wildcard escape", { eventName: [{ wildcard: "a\\b" }] }, "eventName: wildcard \"a\\\\b\": a backslash must be followed by"],
    ["exists operand", { tenantId: [{ exists: "yes" }] }, `tenantId: exists expects a boolean, got "yes"`],
    ["numeric shape", { data: { total: [{ numeric: [">", "x"] }] } },
      `data.total: numeric expects [op, number] or [op, number, op, number], got [">", "x"]`],
    ["numeric length", { data: { total: [{ numeric: [">", 1, "<"] }] } }, "data.total: numeric expects"],
    ["numeric op", { data: { total: [{ numeric: ["!=", 1] }] } }, `data.total: numeric: unknown operator "!="`],
    ["numeric infinity", { data: { total: [{ numeric: [">", Infinity] }] } }, "data.total: numeric: operand must be a finite number, got Infinity"],
    ["numeric NaN", { data: { total: [{ numeric: ["=", NaN] }] } }, "data.total: numeric: operand must be a finite number, got NaN"],
    ["numeric range order", { data: { total: [{ numeric: ["<", 5, ">", 1] }] } }, "data.total: numeric range must be a lower bound"],
    ["numeric range two lower", { data: { total: [{ numeric: [">", 1, ">", 5] }] } }, "data.total: numeric range must be a lower bound"],
    ["numeric range bounds", { data: { total: [{ numeric: [">", 5, "<", 1] }] } }, "data.total: numeric range lower bound 5 exceeds upper bound 1"],
    ["anything-but empty list", { eventName: [{ "anything-but": [] }] }, "eventName: anything-but expects a non-empty list"],
    ["anything-but list element", { eventName: [{ "anything-but": ["a", {}] }] }, "eventName: anything-but list expects a string"],
    ["anything-but object", { eventName: [{ "anything-but": { wildcard: "a" } }] }, "eventName: expected a matcher object with exactly one of the keys prefix, suffix"],
    ["anything-but prefix operand", { eventName: [{ "anything-but": { prefix: 1 } }] }, "eventName: anything-but prefix expects a string"],
    ["non-finite scalar", { data: { a: NaN } }, "data.a: numbers must be finite, got NaN"],
    ["non-finite scalar in list", { data: { a: [-Infinity] } }, "data.a: numbers must be finite, got -Infinity"],
    ["function in list", { eventName: [() => 1] }, "eventName: expected a string, finite number, boolean, null or matcher object, got a function"],
    ["$or with one branch", { $or: [{}] }, "$or: $or expects an array of at least 2 filters"],
    ["$or not an array", { $or: {} }, "$or: $or expects an array"],
    ["bad $or branch", { $or: [{}, { eventName: [] }] }, "$or[1].eventName: a pattern must not be an empty array"],
    ["unknown key in $or branch", { $or: [{ foo: 1 }, {}] }, `$or[0]: unknown key "foo"`],
    ["data not an object", { data: [1] }, "data: data pattern must be an object, got [1]"],
    ["data scalar", { data: "x" }, "data: data pattern must be an object"],
    ["empty nested data object", { data: { a: {} } }, "data.a: empty object in a data pattern"],
    ["non-identifier data keys", { data: { "a.b": { c: [] } } }, `data["a.b"].c: a pattern must not be an empty array`],
    ["non-plain object", { data: { a: new Date(0) } }, "data.a: expected a scalar or an array of matchers"]
  ]

  for (const [name, input, message] of cases) {
    it(`rejects ${name}`, () => {
      const e = errorOf(input)
      expect(e.name).toBe("FilterError")
      expect(e.message.startsWith(message)).toBe(true)
    })
  }

  it("rejects data nesting deeper than 32 levels", () => {
    const deep = (n: number): unknown => (n === 0 ? "leaf" : { k: deep(n - 1) })
    expect(() => validate({ data: deep(32) })).not.toThrow()
    const e = errorOf({ data: deep(33) })
    expect(e.reason).toBe("data pattern nesting is deeper than 32 levels")
    expect(e.path).toBe(`data${".k".repeat(32)}`)
  })

  it("rejects $or nesting deeper than 32 levels", () => {
    const nest = (n: number): Filter => (n === 0 ? {} : { $or: [nest(n - 1), {}] })
    expect(() => validate(nest(32))).not.toThrow()
    const e = errorOf(nest(33))
    expect(e.reason).toBe("$or nesting is deeper than 32 levels")
    expect(e.path).toBe(`${"$or[0].".repeat(32)}$or`)
  })

  it("rejects cyclic inputs", () => {
    const cyclic: Record<string, unknown> = {}
    cyclic["a"] = cyclic
    expect(errorOf({ data: cyclic }).reason).toContain("deeper than 32")
    const f: Record<string, unknown> = {}
    f["$or"] = [f, f]
    expect(errorOf(f).reason).toContain("$or nesting is deeper than 32")
  })

  it("returns a frozen normalized copy and keeps __proto__ as an own key", () => {
    const input = JSON.parse('{"data": {"__proto__": {"x": 1}}, "eventName": ["a"]}') as unknown
    const out = validate(input)
    expect(out).toEqual(input)
    expect(out).not.toBe(input)
    expect(Object.isFrozen(out)).toBe(true)
    expect(Object.hasOwn(out.data!, "__proto__")).toBe(true)
    expect(Object.getPrototypeOf(out.data)).toBe(Object.prototype)
  })

  it("compile and matches validate their input", () => {
    expect(() => compile({ eventName: [] })).toThrow(FilterError)
    expect(() => matches({ $or: [] }, target())).toThrow(FilterError)
  })
})

// ---------------------------------------------------------------------------------------------------------
// Naive reference interpreter (independent of the implementation: direct recursive interpretation)
// ---------------------------------------------------------------------------------------------------------

type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [k: string]: Json }

const isObj = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const globToRegExp = (glob: string): RegExp => {
  let src = ""
  for (let i = 0; i < glob.length; i++) {
    let c = glob[i]!
    if (c === "*") {
      src += "[\\s\\S]*"
      continue
    }
    if (c === "\\") c = glob[++i]!
    src += /[.*+?^${}()|[\]\\/-]/.test(c) ? `\\${c}` : c
  }
  return new RegExp(`^${src}$`)
}

const refScalarMatch = (m: unknown, v: unknown): boolean => {
  if (!(v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean")) return false
  if (!isObj(m)) return m === v
  const [kind, op] = Object.entries(m)[0]!
  const s = typeof v === "string" ? v : undefined
  switch (kind) {
    case "prefix":
      return s !== undefined && s.slice(0, (op as string).length) === op
    case "suffix":
      return s !== undefined && s.length >= (op as string).length && s.slice(s.length - (op as string).length) === op
    case "equals-ignore-case":
      return s !== undefined && s.toLowerCase() === (op as string).toLowerCase()
    case "wildcard":
      return s !== undefined && globToRegExp(op as string).test(s)
    case "numeric": {
      if (typeof v !== "number") return false
      const parts = op as Array<string | number>
      for (let i = 0; i < parts.length; i += 2) {
        const n = parts[i + 1] as number
        const ok = { "=": v === n, "<": v < n, "<=": v <= n, ">": v > n, ">=": v >= n }[parts[i] as string]
        if (!ok) return false
      }
      return true
    }
    case "anything-but": {
      if (Array.isArray(op)) return !op.includes(v)
      if (isObj(op)) return !refScalarMatch(op, v)
      return op !== v
    }
  }
  throw new Error(`reference: unknown matcher ${kind}`)
}

const refMatcher = (m: unknown, value: unknown): boolean => {
  if (isObj(m) && "exists" in m) return m["exists"] === (value !== undefined)
  if (value === undefined) return false
  if (Array.isArray(value)) return value.some((el) => refScalarMatch(m, el))
  return refScalarMatch(m, value)
}

const refPattern = (p: unknown, value: unknown): boolean =>
  (Array.isArray(p) ? p : [p]).some((m) => refMatcher(m, value))

const refData = (pattern: Record<string, unknown>, value: unknown): boolean =>
  Object.entries(pattern).every(([k, sub]) => {
    const child = isObj(value) && Object.prototype.hasOwnProperty.call(value, k) ? value[k] : undefined
    return isObj(sub) ? refData(sub, child) : refPattern(sub, child)
  })

const refMatches = (filter: Filter, t: FilterTarget): boolean =>
  Object.entries(filter).every(([key, p]) => {
    switch (key) {
      case "eventName":
        return refPattern(p, t.eventName)
      case "tenantId":
        return refPattern(p, t.tenantId)
      case "principalId":
        return refPattern(p, t.principalId)
      case "sender":
      case "receiver": {
        const address = key === "sender" ? t.sender : t.receiver
        return Object.entries(p as object).every(([k, ap]) =>
          refPattern(ap, address === undefined ? undefined : (address as unknown as Record<string, unknown>)[k]))
      }
      case "data":
        return refData(p as Record<string, unknown>, t.data)
      case "$or":
        return (p as ReadonlyArray<Filter>).some((b) => refMatches(b, t))
    }
    throw new Error(`reference: unknown key ${key}`)
  })

// ---------------------------------------------------------------------------------------------------------
// Generators: small overlapping pools so that matches actually happen
// ---------------------------------------------------------------------------------------------------------

const EVENTS = ["order.created", "order.updated", "user.created", "Order.Created", "ping"]
const SERVICES = ["orders", "users", "billing"]
const VERSIONS = ["1", "2", "1.1"]
const TARGETS = ["eu", "us"]
const INSTANCES = ["i-1", "i-2"]
const TENANTS = ["t1", "t2", "T1"]
const PRINCIPALS = ["alice", "bob"]
const STRINGS = ["a", "ab", "abc", "A", "Ab", "b", "ba", "x.y", "a*b", "", "a+b", "(a)", "order.created"]
const NUMBERS = [0, 1, 2, 5, 10, -1, 1.5, 100]
const KEYS = ["a", "b", "c", "__proto__", "constructor", "toString"]

/** Builds objects through Object.fromEntries so that `__proto__` becomes an own key. */
const objectOf = <A>(value: fc.Arbitrary<A>, minLength = 0, maxLength = 3): fc.Arbitrary<Record<string, A>> =>
  fc.uniqueArray(fc.tuple(fc.constantFrom(...KEYS), value), { minLength, maxLength, selector: ([k]) => k })
    .map((entries) => Object.fromEntries(entries))

/** A record whose keys are each present (independently) with probability `presence`, otherwise absent. */
const sparse = <R extends Record<string, fc.Arbitrary<unknown>>>(model: R, presence: number) =>
  fc.tuple(...Object.entries(model).map(([k, arb]) =>
    fc.tuple(fc.constant(k), fc.noBias(fc.integer({ min: 0, max: 999 })), arb)
  )).map((entries) =>
    Object.fromEntries(entries.filter(([, roll]) => roll < presence * 1000).map(([k, , v]) => [k, v]))
  ) as fc.Arbitrary<{ [K in keyof R]?: R[K] extends fc.Arbitrary<infer A> ? A : never }>

const scalarArb = (strings: ReadonlyArray<string>) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...strings) },
    { weight: 2, arbitrary: fc.constantFrom(...NUMBERS) },
    { weight: 1, arbitrary: fc.boolean() },
    { weight: 1, arbitrary: fc.constant(null) }
  )

const sliceArb = (strings: ReadonlyArray<string>, fromEnd: boolean) =>
  fc.tuple(fc.constantFrom(...strings), fc.nat(20)).map(([s, n]) => {
    const k = n % (s.length + 1)
    return fromEnd ? s.slice(s.length - k) : s.slice(0, k)
  })

/** A wildcard derived from a pool string: some characters become `*`, literal stars get escaped. */
const wildcardArb = (strings: ReadonlyArray<string>) =>
  fc.tuple(fc.constantFrom(...strings), fc.array(fc.boolean(), { minLength: 20, maxLength: 20 }), fc.boolean())
    .map(([s, stars, upper]) => {
      const out = [...s].map((c, i) => (stars[i] && i % 2 === 0 ? "*" : c === "*" ? "\\*" : c)).join("")
      return upper ? out.toUpperCase() : out
    })

const OPS = ["=", "<", "<=", ">", ">="] as const
const numArb = fc.oneof(fc.constantFrom(...NUMBERS), fc.integer({ min: -2, max: 12 }))
const numericArb = fc.oneof(
  fc.tuple(fc.constantFrom(...OPS), numArb),
  fc.tuple(fc.constantFrom(">", ">="), numArb, fc.constantFrom("<", "<="), numArb).map(([a, x, b, y]) =>
    [a, Math.min(x, y), b, Math.max(x, y)] as const
  )
)

const matcherArb = (strings: ReadonlyArray<string>) =>
  fc.oneof(
    { weight: 5, arbitrary: scalarArb(strings) },
    { weight: 1, arbitrary: sliceArb(strings, false).map((prefix) => ({ prefix })) },
    { weight: 1, arbitrary: sliceArb(strings, true).map((suffix) => ({ suffix })) },
    {
      weight: 2,
      arbitrary: fc.oneof(
        scalarArb(strings),
        fc.array(scalarArb(strings), { minLength: 1, maxLength: 3 }),
        sliceArb(strings, false).map((prefix) => ({ prefix })),
        sliceArb(strings, true).map((suffix) => ({ suffix }))
      ).map((operand) => ({ "anything-but": operand }))
    },
    { weight: 1, arbitrary: numericArb.map((numeric) => ({ numeric })) },
    { weight: 1, arbitrary: fc.boolean().map((exists) => ({ exists })) },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.constantFrom(...strings), fc.boolean()).map(([s, up]) => ({
        "equals-ignore-case": up ? s.toUpperCase() : s.toLowerCase()
      }))
    },
    { weight: 1, arbitrary: wildcardArb(strings).map((wildcard) => ({ wildcard })) }
  )

const patternArb = (strings: ReadonlyArray<string>): fc.Arbitrary<Pattern> =>
  fc.oneof(
    { weight: 1, arbitrary: scalarArb(strings) },
    { weight: 3, arbitrary: fc.array(matcherArb(strings), { minLength: 1, maxLength: 3 }) }
  ) as fc.Arbitrary<Pattern>

const dataPatternArb = (depth: number): fc.Arbitrary<DataPattern> =>
  objectOf<Pattern | DataPattern>(
    depth === 0 ? patternArb(STRINGS) : fc.oneof(
      { weight: 3, arbitrary: patternArb(STRINGS) },
      { weight: 1, arbitrary: dataPatternArb(depth - 1) }
    ),
    1,
    2
  )

const addressPatternArb = sparse({
  service: patternArb(SERVICES),
  version: patternArb(VERSIONS),
  target: patternArb(TARGETS),
  instance: patternArb(INSTANCES)
}, 0.4)

const filterArb = (depth: number): fc.Arbitrary<Filter> =>
  sparse({
    eventName: patternArb(EVENTS),
    sender: addressPatternArb,
    receiver: addressPatternArb,
    principalId: patternArb(PRINCIPALS),
    tenantId: patternArb(TENANTS),
    data: dataPatternArb(2),
    ...(depth > 0 ? { $or: fc.array(filterArb(depth - 1), { minLength: 2, maxLength: 3 }) } : {})
  }, 0.2) as fc.Arbitrary<Filter>

const anyFilter = filterArb(2)

const jsonScalarArb: fc.Arbitrary<Json> = scalarArb(STRINGS)
const jsonArb = (depth: number): fc.Arbitrary<Json> =>
  fc.oneof(
    { weight: 5, arbitrary: jsonScalarArb },
    { weight: 2, arbitrary: fc.array(jsonScalarArb, { maxLength: 3 }) },
    { weight: depth > 0 ? 3 : 0, arbitrary: depth > 0 ? objectOf(jsonArb(depth - 1)) : fc.constant({}) }
  )

const addressArb = fc.tuple(
  fc.constantFrom(...SERVICES),
  fc.constantFrom(...VERSIONS),
  fc.option(fc.constantFrom(...TARGETS), { nil: undefined }),
  fc.option(fc.constantFrom(...INSTANCES), { nil: undefined })
).map(([service, version, t, instance]) => ({
  service,
  version,
  ...(t === undefined ? {} : { target: t }),
  ...(instance === undefined ? {} : { instance })
}))

const targetArb: fc.Arbitrary<FilterTarget> = fc.record({
  eventName: fc.constantFrom(...EVENTS),
  sender: addressArb,
  receiver: fc.option(addressArb, { nil: undefined }),
  principalId: fc.option(fc.constantFrom(...PRINCIPALS), { nil: undefined }),
  tenantId: fc.option(fc.constantFrom(...TENANTS), { nil: undefined }),
  data: fc.oneof({ weight: 6, arbitrary: objectOf(jsonArb(2)) }, { weight: 1, arbitrary: jsonArb(0) })
})

const RUNS = { numRuns: 500 }

// ---------------------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------------------

describe("properties", () => {
  it("generators produce a decent fraction of matching pairs", () => {
    const pairs = fc.sample(fc.tuple(anyFilter, targetArb), { numRuns: 2000, seed: 42 })
    const rate = pairs.filter(([f, t]) => matches(f, t)).length / pairs.length
    expect(rate).toBeGreaterThan(0.15)
    expect(rate).toBeLessThan(0.85)
  })

  it("compiled matcher agrees with the reference interpreter", () => {
    fc.assert(
      fc.property(anyFilter, fc.array(targetArb, { minLength: 1, maxLength: 4 }), (f, ts) => {
        const c = compile(f)
        for (const t of ts) expect(c.matches(t)).toBe(refMatches(f, t))
      }),
      RUNS
    )
  })

  it("every leaf pattern agrees with the reference on data values", () => {
    fc.assert(
      fc.property(patternArb(STRINGS), fc.option(jsonArb(1), { nil: undefined }), (p, v) => {
        const t = withData(v === undefined ? {} : { x: v })
        expect(matches({ data: { x: p } }, t)).toBe(refPattern(p, v))
      }),
      RUNS
    )
  })

  it("the empty filter matches everything", () => {
    const empty = compile({})
    fc.assert(fc.property(targetArb, (t) => empty.matches(t) && matches({}, t)), RUNS)
  })

  it("adding constraints never adds matches", () => {
    fc.assert(
      fc.property(anyFilter, anyFilter, targetArb, (f, g, t) => {
        const merged: Filter = { ...g, ...f } // g's keys that f does not constrain
        if (matches(merged, t)) expect(matches(f, t)).toBe(true)
        // AND g into f: directly when f has no $or, otherwise into each $or branch that has none
        const narrowed: Filter = f.$or === undefined
          ? { ...f, $or: [g, g] }
          : { ...f, $or: f.$or.map((b) => (b.$or === undefined ? { ...b, $or: [g, g] } : b)) }
        if (matches(narrowed, t)) expect(matches(f, t)).toBe(true)
      }),
      RUNS
    )
  })

  it("$or is the union of its branches", () => {
    fc.assert(
      fc.property(anyFilter, anyFilter, targetArb, (a, b, t) => {
        expect(matches({ $or: [a, b] }, t)).toBe(matches(a, t) || matches(b, t))
      }),
      RUNS
    )
  })

  it("eventNames and tenantIds are supersets of what can match", () => {
    fc.assert(
      fc.property(anyFilter, fc.array(targetArb, { minLength: 1, maxLength: 4 }), (f, ts) => {
        const names = eventNames(f)
        const tenants = tenantIds(f)
        for (const t of ts) {
          if (!matches(f, t)) continue
          if (names !== undefined) expect(names).toContain(t.eventName)
          if (tenants !== undefined) expect(tenants).toContain(t.tenantId)
        }
      }),
      RUNS
    )
  })

  it("validate accepts generated filters and survives a JSON round trip", () => {
    fc.assert(
      fc.property(anyFilter, fc.array(targetArb, { minLength: 1, maxLength: 4 }), (f, ts) => {
        const v = validate(f)
        expect(v).toEqual(f)
        const roundTripped = compile(validate(JSON.parse(JSON.stringify(f))))
        const original = compile(f)
        for (const t of ts) expect(roundTripped.matches(t)).toBe(original.matches(t))
      }),
      RUNS
    )
  })
})
