/**
 * Compilation of VALIDATED filters into closures (internal; see `Filter.ts` for the semantics).
 *
 * Everything structural is decided here once: which fields are constrained, which matchers apply, exact
 * values gathered into `Set`s, wildcards split into literal segments. The returned predicate only walks
 * the target.
 *
 * @internal
 */
import type { AnythingBut, DataPattern, Filter, FilterTarget, Matcher, NumericRange, Pattern, Scalar } from "../Filter.ts"

type Pred = (value: unknown) => boolean

const isScalar = (u: unknown): u is Scalar =>
  u === null || typeof u === "string" || typeof u === "boolean" || (typeof u === "number" && Number.isFinite(u))

const isList = (u: unknown): u is ReadonlyArray<unknown> => Array.isArray(u)

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !isList(u)

const never: Pred = () => false

const anyOf = (preds: ReadonlyArray<Pred>): Pred => {
  if (preds.length === 0) return never
  if (preds.length === 1) return preds[0]!
  return (v) => {
    for (const p of preds) if (p(v)) return true
    return false
  }
}

const exactly = (values: ReadonlyArray<Scalar>): Pred => {
  if (values.length === 1) {
    const only = values[0]
    return (v) => v === only
  }
  const set = new Set<unknown>(values)
  return (v) => set.has(v)
}

/**
 * Wildcard matching without RegExp: literal segments between stars are matched as prefix, suffix and
 * leftmost `indexOf` for the middle ones (greedy-leftmost is exact for star-only globs). Linear-ish time,
 * no regex metacharacter escaping needed and no catastrophic backtracking.
 */
const wildcard = (pattern: string): Pred => {
  const segments: Array<string> = [""]
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!
    if (c === "*") segments.push("")
    else segments[segments.length - 1] += c === "\\" ? pattern[++i]! : c
  }
  if (segments.length === 1) return (v) => v === segments[0]
  const first = segments[0]!
  const last = segments[segments.length - 1]!
  const middle = segments.slice(1, -1).filter((s) => s.length > 0)
  return (v) => {
    if (typeof v !== "string" || v.length < first.length + last.length) return false
    if (!v.startsWith(first) || !v.endsWith(last)) return false
    const end = v.length - last.length
    let pos = first.length
    for (const s of middle) {
      const i = v.indexOf(s, pos)
      if (i < 0 || i + s.length > end) return false
      pos = i + s.length
    }
    return true
  }
}

const compare = (op: string, n: number): (x: number) => boolean => {
  switch (op) {
    case "=":
      return (x) => x === n
    case "<":
      return (x) => x < n
    case "<=":
      return (x) => x <= n
    case ">":
      return (x) => x > n
    default:
      return (x) => x >= n
  }
}

const numeric = (range: NumericRange): Pred => {
  const a = compare(range[0], range[1])
  if (range.length === 2) return (v) => typeof v === "number" && a(v)
  const b = compare(range[2], range[3])
  return (v) => typeof v === "number" && a(v) && b(v)
}

const anythingBut = (operand: AnythingBut): Pred => {
  if (isList(operand)) {
    const excluded = exactly(operand)
    return (v) => !excluded(v)
  }
  if (isScalar(operand)) return (v) => v !== operand
  if ("prefix" in operand) {
    const p = operand.prefix
    return (v) => !(typeof v === "string" && v.startsWith(p))
  }
  const s = operand.suffix
  return (v) => !(typeof v === "string" && v.endsWith(s))
}

/** Compiles one non-scalar, non-`exists` matcher into a predicate over a present scalar. */
const matcher = (m: Exclude<Matcher, Scalar | { readonly exists: boolean }>): Pred => {
  if ("prefix" in m) {
    const p = m.prefix
    return (v) => typeof v === "string" && v.startsWith(p)
  }
  if ("suffix" in m) {
    const s = m.suffix
    return (v) => typeof v === "string" && v.endsWith(s)
  }
  if ("equals-ignore-case" in m) {
    const lower = m["equals-ignore-case"].toLowerCase()
    return (v) => typeof v === "string" && v.toLowerCase() === lower
  }
  if ("wildcard" in m) return wildcard(m.wildcard)
  if ("numeric" in m) return numeric(m.numeric)
  return anythingBut(m["anything-but"])
}

/** Compiles a pattern into a predicate over the (possibly absent, possibly array) target value. */
const compilePattern = (pattern: Pattern): Pred => {
  const exact: Array<Scalar> = []
  const others: Array<Pred> = []
  let existsTrue = false
  let existsFalse = false
  for (const m of isList(pattern) ? pattern : [pattern]) {
    if (isScalar(m)) exact.push(m)
    else if ("exists" in m) {
      if (m.exists) existsTrue = true
      else existsFalse = true
    }
    else others.push(matcher(m))
  }
  if (exact.length > 0) others.unshift(exactly(exact))
  const one = anyOf(others)
  const onScalar: Pred = (v) => isScalar(v) && one(v)
  if (existsTrue) return existsFalse ? () => true : (v) => v !== undefined
  return (v) => {
    if (v === undefined) return existsFalse
    if (isList(v)) {
      for (const el of v) if (onScalar(el)) return true
      return false
    }
    return onScalar(v)
  }
}

/** Compiles a data pattern into a predicate over the value at its position (own properties only). */
const compileData = (pattern: DataPattern): Pred => {
  const fields = Object.keys(pattern).map((key): readonly [string, Pred] => {
    const p = pattern[key]!
    return [key, isRecord(p) ? compileData(p as DataPattern) : compilePattern(p as Pattern)]
  })
  return (v) => {
    const obj = isRecord(v) ? v : undefined
    for (const [key, pred] of fields) {
      if (!pred(obj !== undefined && Object.hasOwn(obj, key) ? obj[key] : undefined)) return false
    }
    return true
  }
}

type TargetPred = (target: FilterTarget) => boolean

const ADDRESS_KEYS = ["service", "version", "target", "instance"] as const

/** Compiles a validated filter into a single target predicate (constraints AND-ed, `$or` checked last). */
export const compileFilter = (filter: Filter): TargetPred => {
  const checks: Array<TargetPred> = []
  const scalarField = (field: "eventName" | "principalId" | "tenantId") => {
    const pattern = filter[field]
    if (pattern === undefined) return
    const p = compilePattern(pattern)
    checks.push((t) => p(t[field]))
  }
  scalarField("eventName")
  scalarField("tenantId")
  scalarField("principalId")
  for (const side of ["sender", "receiver"] as const) {
    const address = filter[side]
    if (address === undefined) continue
    for (const key of ADDRESS_KEYS) {
      const pattern = address[key]
      if (pattern === undefined) continue
      const p = compilePattern(pattern)
      checks.push((t) => p(t[side]?.[key]))
    }
  }
  if (filter.data !== undefined && Object.keys(filter.data).length > 0) {
    const p = compileData(filter.data)
    checks.push((t) => p(t.data))
  }
  if (filter.$or !== undefined) {
    const branches = filter.$or.map(compileFilter)
    checks.push((t) => {
      for (const b of branches) if (b(t)) return true
      return false
    })
  }
  if (checks.length === 0) return () => true
  if (checks.length === 1) return checks[0]!
  return (t) => {
    for (const c of checks) if (!c(t)) return false
    return true
  }
}
