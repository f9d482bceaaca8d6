/** Definition-time validation of the names that end up in subjects, topics and queues. */
import { DefinitionError } from "../BridgeError.ts"

const NAME = /^[a-z][a-z0-9-]{0,62}$/
const EVENT_NAME = /^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$/
const VERSION = /^(0|[1-9][0-9]{0,8})$/

/** Service, command and subscription names: lower-case letters, digits and `-`, starting with a letter, at most 63 characters. */
export const checkName = (what: string, name: unknown): string => {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new DefinitionError(
      `${what} name ${JSON.stringify(name)} is invalid: use 1-63 lower-case letters, digits or '-', starting with a letter`
    )
  }
  return name
}

/** Event names: dot-separated segments of lower-case letters, digits and `-` (e.g. `order.placed`), at most 127 characters. */
export const checkEventName = (what: string, name: unknown): string => {
  if (typeof name !== "string" || name.length > 127 || !EVENT_NAME.test(name)) {
    throw new DefinitionError(
      `${what} ${JSON.stringify(name)} is invalid: use dot-separated segments of lower-case letters, digits or '-', each starting with a letter, at most 127 characters`
    )
  }
  return name
}

/** The event namespace Herald keeps for itself (dead letters, discovery). */
export const RESERVED_EVENT_PREFIX = "herald."

/** The subscription name every service instance uses for discovery requests. */
export const RESERVED_SUBSCRIPTION = "herald-discovery"

/** An event name a user may publish: a valid event name outside the reserved `herald.` namespace. */
export const checkUserEventName = (what: string, name: unknown): string => {
  const checked = checkEventName(what, name)
  if (checked.startsWith(RESERVED_EVENT_PREFIX)) {
    throw new DefinitionError(`${what} ${JSON.stringify(name)} is reserved: the "herald." event namespace belongs to Herald itself`)
  }
  return checked
}

/** A service version is its major version: a non-negative integer written in decimal, e.g. `"1"`. */
export const checkVersion = (service: string, version: unknown): string => {
  if (typeof version !== "string" || !VERSION.test(version)) {
    throw new DefinitionError(
      `service ${service}: version ${JSON.stringify(version)} is invalid: use the major version as a decimal integer string, e.g. "1"`
    )
  }
  return version
}

/** Throws when two items share a name. */
export const checkUnique = (what: string, names: ReadonlyArray<string>): void => {
  const seen = new Set<string>()
  for (const name of names) {
    if (seen.has(name)) throw new DefinitionError(`${what}: the name ${JSON.stringify(name)} is used twice`)
    seen.add(name)
  }
}
