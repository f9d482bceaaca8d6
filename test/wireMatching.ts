/**
 * Reference matchers of each broker's wildcard syntax, written from the brokers' documentation, for
 * tests that check what a pre-filter admits without a broker.
 */

/** NATS subject matching: `*` is one token, `>` one or more trailing tokens. */
export const natsMatches = (pattern: string, subject: string): boolean => {
  const p = pattern.split(".")
  const s = subject.split(".")
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i
    if (i >= s.length || (p[i] !== "*" && p[i] !== s[i])) return false
  }
  return p.length === s.length
}

/** MQTT topic matching: `+` is one level, `#` zero or more trailing levels. */
export const mqttMatches = (filter: string, topic: string): boolean => {
  const f = filter.split("/")
  const t = topic.split("/")
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true
    if (i >= t.length || (f[i] !== "+" && f[i] !== t[i])) return false
  }
  return f.length === t.length
}

/** AMQP topic-exchange matching: `*` is exactly one word, `#` zero or more words. */
export const amqpMatches = (pattern: string, key: string): boolean => {
  const p = pattern.split(".")
  const k = key.split(".")
  const go = (i: number, j: number): boolean => {
    if (i === p.length) return j === k.length
    if (p[i] === "#") return go(i + 1, j) || (j < k.length && go(i, j + 1))
    return j < k.length && (p[i] === "*" || p[i] === k[j]) && go(i + 1, j + 1)
  }
  return go(0, 0)
}
