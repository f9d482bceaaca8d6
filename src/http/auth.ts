/**
 * Authentication at the HTTP edge: a user-supplied Effect turns the current request into a
 * principal (and tenant), which the gateway puts into the command envelope.
 *
 * Nothing a client sends besides the credentials it presents reaches the principal or tenant:
 * they come from `authenticate` only, never from the payload or from other headers.
 */
import { Effect, Option, Schema } from "effect"
import { HttpServerRequest } from "effect/http"
import type { OpenApi } from "effect/http-api"

/** Who acts, for which tenant: what an `authenticate` Effect returns. */
export interface Principal {
  /** Becomes the envelope's `principalid`. */
  readonly principalId: string
  /** Becomes the envelope's `tenantid`; absent for principals that act for no tenant. */
  readonly tenantId?: string | undefined
}

/** The request carries no valid credentials. The gateway answers 401 with a problem document. */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  /** Why the credentials were refused, shown to the client as the problem's `detail`. Keep it vague. */
  reason: Schema.String
}) {
  override get message() {
    return `unauthorized: ${this.reason}`
  }
}

/**
 * How the gateway authenticates requests.
 *
 * `R` is what `authenticate` needs besides the request (a user store, a JWKS cache, …); it surfaces
 * in the requirements of the gateway's Layer.
 */
export interface AuthOptions<R = never> {
  /**
   * Reads the current `HttpServerRequest` and returns its principal, or fails with `Unauthorized`.
   * Any other failure or defect of this Effect is answered 500.
   */
  readonly authenticate: Effect.Effect<Principal, Unauthorized, HttpServerRequest.HttpServerRequest | R>
  /**
   * How the credentials are presented, for the OpenAPI document's `securitySchemes`.
   * Default: HTTP bearer (`Authorization: Bearer <token>`).
   */
  readonly scheme?: OpenApi.OpenAPISecurityScheme | undefined
  /** The `WWW-Authenticate` challenge sent with every 401. Default `Bearer` for the bearer scheme, none otherwise. */
  readonly challenge?: string | undefined
}

/** The default security scheme: `Authorization: Bearer <token>`. */
export const bearerScheme: OpenApi.OpenAPISecurityScheme = { type: "http", scheme: "bearer" }

/** The name of the security scheme in the OpenAPI document. */
export const SECURITY_SCHEME_NAME = "heraldAuth"

const BEARER = /^Bearer[ ]+([\x21-\x7e]+)[ ]*$/i

/**
 * Bearer-token authentication: reads `Authorization: Bearer <token>` and hands the token to `verify`.
 * A missing or malformed header fails with `Unauthorized` before `verify` runs.
 *
 * @example
 * HttpGateway.layer({
 *   services: [Orders],
 *   port: 8080,
 *   auth: HttpGateway.bearer((token) =>
 *     token === "s3cret"
 *       ? Effect.succeed({ principalId: "alice", tenantId: "acme" })
 *       : Effect.fail(new HttpGateway.Unauthorized({ reason: "unknown token" })))
 * })
 */
export const bearer = <R = never>(
  verify: (token: string) => Effect.Effect<Principal, Unauthorized, R>
): AuthOptions<R> => ({
  scheme: bearerScheme,
  challenge: "Bearer",
  authenticate: Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const header = request.headers["authorization"]
    const token = Option.fromNullishOr(header === undefined ? undefined : BEARER.exec(header)?.[1])
    return Option.match(token, {
      onNone: () =>
        Effect.fail(new Unauthorized({ reason: header === undefined ? "missing credentials" : "malformed credentials" })),
      onSome: verify
    })
  })
})

/** The challenge to send with a 401, from the options. */
export const challengeOf = (auth: AuthOptions<unknown>): string | undefined =>
  auth.challenge ??
    (auth.scheme === undefined || (auth.scheme.type === "http" && auth.scheme.scheme.toLowerCase() === "bearer")
      ? "Bearer"
      : undefined)
