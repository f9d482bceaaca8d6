/**
 * Content filters: a small, pure pattern language modelled on AWS EventBridge event patterns.
 *
 * A {@link Filter} is matched against a {@link FilterTarget} (event name, sender/receiver addresses,
 * principal, tenant and the encoded JSON payload). Semantics in short:
 *
 * - An absent key in the filter matches anything; the empty filter `{}` matches every target.
 * - All leaf patterns of a filter are AND-ed, the matchers of one pattern are OR-ed, and `$or` requires
 *   at least one of its branches (each a full filter) to match in addition to the other keys.
 * - A target value that is absent (`undefined`) only matches `{ exists: false }`. `null` is a present value.
 * - A target value that is an array matches when ANY element matches (an empty array matches nothing),
 *   except for `exists`, which looks at the array itself: a present array, even empty, exists.
 * - Matchers other than `exists` only match scalar values (string, number, boolean, null); objects and nested
 *   arrays never match them (not even `anything-but`).
 * - Data patterns are nested objects whose leaves are patterns; each leaf is evaluated against the value at its
 *   path, where the path lookup only follows OWN properties of plain (non-array) objects. An array in the middle
 *   of a path is not descended into: the value there is treated as absent.
 *
 * @since 0.1.0
 */
import { compileFilter } from "./internal/filterCompile.ts"

/** A logical service address (service name, version and optional target / instance). */
export interface Address {
  readonly service: string
  readonly version: string
  readonly target?: string | undefined
  readonly instance?: string | undefined
}

/** What a filter is matched against; `data` is the event payload in its ENCODED (JSON) form. */
export interface FilterTarget {
  readonly eventName: string
  readonly sender: Address
  readonly receiver?: Address | undefined
  readonly principalId?: string | undefined
  readonly tenantId?: string | undefined
  readonly data: unknown
}

/** A JSON scalar; as a matcher it means exact, strictly typed equality (`"1"` does not match `1`). */
export type Scalar = string | number | boolean | null

/** Comparison operators of the `numeric` matcher. */
export type NumericOp = "=" | "<" | "<=" | ">" | ">="

/**
 * Operand of the `numeric` matcher: one comparison, or a range written lower bound first
 * (`[">" | ">=", lower, "<" | "<=", upper]` with `lower <= upper`).
 */
export type NumericRange =
  | readonly [NumericOp, number]
  | readonly [">" | ">=", number, "<" | "<=", number]

/** Operand of `anything-but`: excluded scalars, or an excluded string prefix / suffix. */
export type AnythingBut =
  | Scalar
  | ReadonlyArray<Scalar>
  | { readonly prefix: string }
  | { readonly suffix: string }

/**
 * One matcher of a pattern.
 *
 * - scalar: exact equality.
 * - `prefix` / `suffix`: string starts / ends with the operand (non-strings never match).
 * - `anything-but`: the value is PRESENT and not excluded (an absent value never matches; a non-string
 *   never matches an excluded prefix/suffix, so it passes `anything-but: { prefix }`).
 * - `numeric`: the value is a number in the range (numeric strings never match).
 * - `exists`: `true` when the value is present (`null` and empty arrays are present), `false` when absent.
 * - `equals-ignore-case`: string equal after `toLowerCase()` on both sides.
 * - `wildcard`: `*` matches any (possibly empty) sequence, `\*` a literal star, `\\` a literal backslash;
 *   every other character is literal (a backslash before anything else is rejected by {@link validate}).
 */
export type Matcher =
  | Scalar
  | { readonly prefix: string }
  | { readonly suffix: string }
  | { readonly "anything-but": AnythingBut }
  | { readonly numeric: NumericRange }
  | { readonly exists: boolean }
  | { readonly "equals-ignore-case": string }
  | { readonly wildcard: string }

/** A pattern: a scalar (shorthand for `[scalar]`) or a non-empty list of matchers, OR-ed. */
export type Pattern = Scalar | ReadonlyArray<Matcher>

/**
 * A pattern over the payload: keys are payload field names; values are patterns (scalars or arrays) or
 * nested data patterns (plain objects). Note that a bare matcher object such as `{ prefix: "a" }` in value
 * position is a NESTED pattern for a field literally called `prefix`; wrap matchers in an array.
 */
export interface DataPattern {
  readonly [field: string]: Pattern | DataPattern
}

/** Patterns over the fields of an {@link Address}. */
export interface AddressPattern {
  readonly service?: Pattern
  readonly version?: Pattern
  readonly target?: Pattern
  readonly instance?: Pattern
}

/** A content filter (plain JSON-able object); see the module documentation for semantics. */
export interface Filter {
  readonly eventName?: Pattern
  readonly sender?: AddressPattern
  readonly receiver?: AddressPattern
  readonly principalId?: Pattern
  readonly tenantId?: Pattern
  readonly data?: DataPattern
  /** At least two branches; the filter matches when its other keys match AND at least one branch matches. */
  readonly $or?: ReadonlyArray<Filter>
}

/** A validated filter compiled once into a matching function. */
export interface Compiled {
  readonly filter: Filter
  readonly matches: (target: FilterTarget) => boolean
}

/** Raised by {@link validate} / {@link compile}; the message is `<path>: <reason>`. */
export class FilterError extends Error {
  override readonly name = "FilterError"
  /** Where the problem is, e.g. `data.total` or `$or[1].eventName` (`filter` for the root). */
  readonly path: string
  /** Why the filter is invalid. */
  readonly reason: string
  constructor(path: string, reason: string) {
    super(`${path}: ${reason}`)
    this.path = path
    this.reason = reason
  }
}

/** Maximum number of segments in a data pattern path (also bounds `$or` nesting). */
const MAX_DEPTH = 32
const TOP_KEYS = ["eventName", "sender", "receiver", "principalId", "tenantId", "data", "$or"] as const
const ADDRESS_KEYS = ["service", "version", "target", "instance"] as const
const MATCHER_KEYS = ["prefix", "suffix", "anything-but", "numeric", "exists", "equals-ignore-case", "wildcard"]
const NUMERIC_OPS: ReadonlyArray<string> = ["=", "<", "<=", ">", ">="]
const NUMERIC_SHAPE = "numeric expects [op, number] or [op, number, op, number]"

const isScalar = (u: unknown): u is Scalar =>
  u === null || typeof u === "string" || typeof u === "boolean" || (typeof u === "number" && Number.isFinite(u))

const isPlainObject = (u: unknown): u is Record<string, unknown> => {
  if (typeof u !== "object" || u === null || Array.isArray(u)) return false
  const proto = Object.getPrototypeOf(u)
  return proto === Object.prototype || proto === null
}

const isList = (u: unknown): u is ReadonlyArray<unknown> => Array.isArray(u)

/** Renders a value for error messages (JSON-like, bounded). */
const show = (u: unknown, depth = 0): string => {
  if (typeof u === "string") return JSON.stringify(u)
  if (typeof u === "number") return Object.is(u, -0) ? "-0" : String(u)
  if (typeof u === "bigint") return `${u}n`
  if (typeof u === "function") return "a function"
  if (typeof u !== "object" || u === null) return String(u)
  if (depth >= 2) return isList(u) ? "[…]" : "{…}"
  const more = (n: number) => (n > 6 ? ", …" : "")
  if (isList(u)) return `[${u.slice(0, 6).map((x) => show(x, depth + 1)).join(", ")}${more(u.length)}]`
  const keys = Object.keys(u)
  const body = keys.slice(0, 6).map((k) => `${JSON.stringify(k)}: ${show((u as Record<string, unknown>)[k], depth + 1)}`)
  return keys.length === 0 ? "{}" : `{ ${body.join(", ")}${more(keys.length)} }`
}

const join = (base: string, key: string | number): string =>
  typeof key === "number"
    ? `${base}[${key}]`
    : /^[A-Za-z_$][\w$]*$/.test(key)
    ? (base === "" ? key : `${base}.${key}`)
    : `${base}[${JSON.stringify(key)}]`

const fail = (path: string, reason: string): never => {
  throw new FilterError(path === "" ? "filter" : path, reason)
}

const requireString = (u: unknown, path: string, what: string): string =>
  typeof u === "string" ? u : fail(path, `${what} expects a string, got ${show(u)}`)

const checkWildcard = (s: string, path: string): string => {
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\") {
      const next = s[i + 1]
      if (next !== "*" && next !== "\\") {
        fail(path, `wildcard ${show(s)}: a backslash must be followed by * or \\ (at index ${i})`)
      }
      i++
    }
  }
  return s
}

const exactlyOneKey = (o: Record<string, unknown>, path: string, expected: ReadonlyArray<string>): string => {
  const keys = Object.keys(o)
  const key = keys[0]
  if (keys.length !== 1 || key === undefined || !expected.includes(key)) {
    fail(path, `expected a matcher object with exactly one of the keys ${expected.join(", ")}, got ${show(o)}`)
  }
  return key as string
}

const validateNumeric = (u: unknown, path: string): NumericRange => {
  const okShape = isList(u) && (u.length === 2 || u.length === 4) &&
    u.every((x, i) => (i % 2 === 0 ? typeof x === "string" : typeof x === "number"))
  if (!okShape) return fail(path, `${NUMERIC_SHAPE}, got ${show(u)}`)
  const parts = u as ReadonlyArray<string | number>
  for (let i = 0; i < parts.length; i += 2) {
    if (!NUMERIC_OPS.includes(parts[i] as string)) {
      fail(path, `numeric: unknown operator ${show(parts[i])} (expected one of ${NUMERIC_OPS.join(" ")})`)
    }
    if (!Number.isFinite(parts[i + 1])) fail(path, `numeric: operand must be a finite number, got ${show(parts[i + 1])}`)
  }
  if (parts.length === 4) {
    const [lo, lower, hi, upper] = parts as [string, number, string, number]
    if ((lo !== ">" && lo !== ">=") || (hi !== "<" && hi !== "<=")) {
      fail(path, `numeric range must be a lower bound (> or >=) followed by an upper bound (< or <=), got ${show(u)}`)
    }
    if (lower > upper) fail(path, `numeric range lower bound ${lower} exceeds upper bound ${upper}`)
  }
  return Object.freeze([...parts]) as unknown as NumericRange
}

const validateScalar = (u: unknown, path: string, what: string): Scalar =>
  isScalar(u) ? u : fail(path, `${what} expects a string, finite number, boolean or null, got ${show(u)}`)

const validateAnythingBut = (u: unknown, path: string): AnythingBut => {
  if (isList(u)) {
    if (u.length === 0) fail(path, "anything-but expects a non-empty list, got []")
    return Object.freeze(u.map((x) => validateScalar(x, path, "anything-but list")))
  }
  if (isPlainObject(u)) {
    const key = exactlyOneKey(u, path, ["prefix", "suffix"])
    const operand = requireString(u[key], path, `anything-but ${key}`)
    return Object.freeze(key === "prefix" ? { prefix: operand } : { suffix: operand })
  }
  return validateScalar(u, path, "anything-but")
}

const notFinite = (u: unknown, path: string): void => {
  if (typeof u === "number" && !Number.isFinite(u)) fail(path, `numbers must be finite, got ${show(u)}`)
}

const validateMatcher = (u: unknown, path: string): Matcher => {
  if (isScalar(u)) return u
  notFinite(u, path)
  if (!isPlainObject(u)) {
    return fail(path, `expected a string, finite number, boolean, null or matcher object, got ${show(u)}`)
  }
  const key = exactlyOneKey(u, path, MATCHER_KEYS)
  const v = u[key]
  switch (key) {
    case "prefix":
      return Object.freeze({ prefix: requireString(v, path, "prefix") })
    case "suffix":
      return Object.freeze({ suffix: requireString(v, path, "suffix") })
    case "equals-ignore-case":
      return Object.freeze({ "equals-ignore-case": requireString(v, path, "equals-ignore-case") })
    case "wildcard":
      return Object.freeze({ wildcard: checkWildcard(requireString(v, path, "wildcard"), path) })
    case "exists":
      return typeof v === "boolean" ? Object.freeze({ exists: v }) : fail(path, `exists expects a boolean, got ${show(v)}`)
    case "numeric":
      return Object.freeze({ numeric: validateNumeric(v, path) })
    default:
      return Object.freeze({ "anything-but": validateAnythingBut(v, path) })
  }
}

const validatePattern = (u: unknown, path: string): Pattern => {
  if (isScalar(u)) return u
  notFinite(u, path)
  if (isList(u)) {
    if (u.length === 0) fail(path, "a pattern must not be an empty array")
    const out: Array<Matcher> = []
    for (let i = 0; i < u.length; i++) out.push(validateMatcher(u[i], path))
    return Object.freeze(out)
  }
  if (isPlainObject(u)) {
    return fail(path, `expected a scalar or an array of matchers (wrap matcher objects in an array), got ${show(u)}`)
  }
  return fail(path, `expected a scalar or an array of matchers, got ${show(u)}`)
}

const validateData = (u: Record<string, unknown>, path: string, depth: number): DataPattern =>
  Object.freeze(Object.fromEntries(Object.keys(u).map((key) => {
    const p = join(path, key)
    const v = u[key]
    if (isPlainObject(v)) {
      if (depth + 1 >= MAX_DEPTH) fail(p, `data pattern nesting is deeper than ${MAX_DEPTH} levels`)
      if (Object.keys(v).length === 0) fail(p, "empty object in a data pattern (use [{ exists: true }] to require a field)")
      return [key, validateData(v, p, depth + 1)]
    }
    return [key, validatePattern(v, p)]
  })))

const validateAddress = (u: unknown, path: string): AddressPattern => {
  if (!isPlainObject(u)) return fail(path, `expected an object with keys ${ADDRESS_KEYS.join(", ")}, got ${show(u)}`)
  const out: Record<string, Pattern> = {}
  for (const key of Object.keys(u)) {
    if (!(ADDRESS_KEYS as ReadonlyArray<string>).includes(key)) {
      fail(path, `unknown key ${show(key)} (expected one of ${ADDRESS_KEYS.join(", ")})`)
    }
    out[key] = validatePattern(u[key], join(path, key))
  }
  return Object.freeze(out)
}

const validateFilter = (u: unknown, path: string, depth: number): Filter => {
  if (!isPlainObject(u)) return fail(path, `expected a filter object, got ${show(u)}`)
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(u)) {
    const v = u[key]
    const p = join(path, key)
    switch (key) {
      case "eventName":
      case "principalId":
      case "tenantId":
        out[key] = validatePattern(v, p)
        break
      case "sender":
      case "receiver":
        out[key] = validateAddress(v, p)
        break
      case "data":
        if (!isPlainObject(v)) fail(p, `data pattern must be an object, got ${show(v)}`)
        out[key] = validateData(v as Record<string, unknown>, p, 0)
        break
      case "$or": {
        if (!isList(v) || v.length < 2) fail(p, `$or expects an array of at least 2 filters, got ${show(v)}`)
        if (depth >= MAX_DEPTH) fail(p, `$or nesting is deeper than ${MAX_DEPTH} levels`)
        out[key] = Object.freeze((v as ReadonlyArray<unknown>).map((b, i) => validateFilter(b, join(p, i), depth + 1)))
        break
      }
      default:
        fail(path, `unknown key ${show(key)} (expected one of ${TOP_KEYS.join(", ")})`)
    }
  }
  return Object.freeze(out) as Filter
}

/**
 * Checks that `input` is a well-formed filter and returns a normalized, deeply frozen copy of it.
 *
 * Throws {@link FilterError} naming the offending path for: non-object filters, unknown keys (top level,
 * `sender` / `receiver`), `undefined` values (rejected rather than treated as absent, so a missing variable
 * never silently widens a filter), empty matcher arrays, unknown matcher objects or matcher objects with
 * extra keys, wrong operand types, non-finite numbers, bad `numeric` ranges, bad wildcard escapes,
 * `$or` with fewer than 2 branches, a non-object `data`, empty nested data objects, and data pattern paths
 * (or `$or` nesting) deeper than 32 levels. Only plain objects (prototype `Object.prototype` or `null`) and
 * their own enumerable keys are considered; `__proto__` is an ordinary data key.
 */
export const validate = (input: unknown): Filter => validateFilter(input, "", 0)

/**
 * Validates `filter` and compiles it once into closures (precomputed per-field predicates, `Set` lookups
 * for exact values, pre-split wildcard segments), so matching never re-interprets the filter object.
 * `Compiled.filter` is the validated (normalized, frozen) copy.
 */
export const compile = (filter: Filter): Compiled => {
  const validated = validate(filter)
  return Object.freeze({ filter: validated, matches: compileFilter(validated) })
}

const cache = new WeakMap<Filter, Compiled>()

const compiledOf = (filter: Filter | Compiled): Compiled => {
  if (typeof (filter as Partial<Compiled>).matches === "function") return filter as Compiled
  const f = filter as Filter
  let c = cache.get(f)
  if (c === undefined) {
    c = compile(f)
    cache.set(f, c)
  }
  return c
}

/**
 * Tests `target` against a filter. A raw filter is compiled on first use and cached in a `WeakMap`
 * keyed by the filter object, so treat filter objects as immutable once used.
 */
export const matches = (filter: Filter | Compiled, target: FilterTarget): boolean =>
  compiledOf(filter).matches(target)

/** Exact strings of a pattern, or undefined when it contains any non-scalar matcher. */
const exactStrings = (p: Pattern): ReadonlyArray<string> | undefined => {
  const out: Array<string> = []
  for (const m of isList(p) ? p : [p]) {
    if (typeof m === "string") out.push(m)
    else if (!isScalar(m)) return undefined // non-string scalars can never equal a string: skip them
  }
  return out
}

const possibleValues = (f: Filter, field: "eventName" | "tenantId"): Set<string> | undefined => {
  const own = f[field]
  const top = own === undefined ? undefined : exactStrings(own)
  if (f.$or === undefined) return top === undefined ? undefined : new Set(top)
  let union: Set<string> | undefined = new Set()
  for (const branch of f.$or) {
    const s = possibleValues(branch, field)
    if (s === undefined) {
      union = undefined
      break
    }
    for (const x of s) union.add(x)
  }
  if (top === undefined) return union
  return new Set(union === undefined ? top : top.filter((x) => union.has(x)))
}

const listOf = (s: Set<string> | undefined): ReadonlyArray<string> | undefined =>
  s === undefined ? undefined : Object.freeze([...s])

/**
 * Broker pre-filter helper: the finite set of event names that can possibly match, or `undefined` when
 * any name could. Superset guarantee: every matching target's `eventName` is in the list. Only exact
 * scalars are analysed (non-string scalars are dropped, as they never equal a name); any other matcher
 * gives `undefined`. With `$or`, the top-level set is intersected with the union of the branch sets
 * (either side alone when the other is unconstrained). Validates the filter first.
 */
export const eventNames = (filter: Filter): ReadonlyArray<string> | undefined =>
  listOf(possibleValues(compiledOf(filter).filter, "eventName"))

/**
 * Same as {@link eventNames} for `tenantId`: the exact tenant ids that can possibly match, or `undefined`.
 * A target without a tenant can only match when the result is `undefined`.
 */
export const tenantIds = (filter: Filter): ReadonlyArray<string> | undefined =>
  listOf(possibleValues(compiledOf(filter).filter, "tenantId"))
