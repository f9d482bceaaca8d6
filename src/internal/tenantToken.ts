/**
 * The tenant token shared by every broker bridge: an optional tenant id encoded, injectively, as one
 * word of a subject, topic level or routing key (letters, digits, `-` and `_` only).
 */
const PLAIN = /[A-Za-z0-9-]/

/** The tenant token of events published without a tenant. */
export const NO_TENANT = "_"
/** The tenant token of the empty tenant id `""`. */
export const EMPTY_TENANT = "__"

/**
 * Encodes an optional tenant id as exactly one word of a subject, topic or routing key, injectively.
 *
 * No tenant is `_`, the empty string is `__`; otherwise ASCII letters, digits and `-` are kept and
 * every other UTF-16 code unit becomes `_` followed by its 4 upper-case hex digits (`.` is `_002E`,
 * `/` is `_002F`, `_` is `_005F`). A `_` in an encoded tenant is always followed by 4 hex digits, so the two
 * special tokens never collide with an encoded tenant.
 */
export const encodeTenant = (tenantId: string | undefined): string => {
  if (tenantId === undefined) return NO_TENANT
  if (tenantId === "") return EMPTY_TENANT
  let out = ""
  for (let i = 0; i < tenantId.length; i++) {
    const c = tenantId[i]!
    out += PLAIN.test(c) ? c : `_${tenantId.charCodeAt(i).toString(16).toUpperCase().padStart(4, "0")}`
  }
  return out
}

/** Decodes a tenant token: the tenant id, `undefined` for no tenant, or `null` when it is not a tenant token. */
export const decodeTenant = (token: string): string | undefined | null => {
  if (token === NO_TENANT) return undefined
  if (token === EMPTY_TENANT) return ""
  let out = ""
  for (let i = 0; i < token.length;) {
    const c = token[i]!
    if (PLAIN.test(c)) {
      out += c
      i++
    } else if (c === "_" && /^[0-9A-F]{4}$/.test(token.slice(i + 1, i + 5))) {
      out += String.fromCharCode(parseInt(token.slice(i + 1, i + 5), 16))
      i += 5
    } else {
      return null
    }
  }
  return out === "" ? null : out
}
