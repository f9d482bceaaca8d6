/**
 * RFC 9457 problem documents: how the gateway answers every request it cannot serve with the
 * command's output or one of its declared errors.
 *
 * Every problem has a `type` of the form `urn:herald:problem:<kind>`, the HTTP `status`, a fixed
 * `title` per kind, and the request's `correlationId` and `traceId`; validation problems list their
 * `issues`, internal errors an `errorId` under which the full cause was logged. No internal detail
 * (messages, stacks) of a defect ever reaches a client.
 */
import { Schema, SchemaIssue } from "effect"
import { Headers, HttpServerResponse, ProblemDetails } from "effect/http"
import type { CallError } from "../BridgeError.ts"

/** One schema issue: where in the input (`path`) and what is wrong (`message`, without the value). */
export const ProblemIssue = Schema.Struct({
  path: Schema.Array(Schema.Union([Schema.String, Schema.Finite])),
  message: Schema.String
}).annotate({ identifier: "ProblemIssue" })

/** The schema of every problem document the gateway sends (`application/problem+json`). */
export const Problem = Schema.Struct({
  type: Schema.String.annotate({ description: "urn:herald:problem:<kind>" }),
  title: Schema.String,
  status: Schema.Int,
  detail: Schema.optionalKey(Schema.String),
  correlationId: Schema.optionalKey(Schema.String),
  traceId: Schema.optionalKey(Schema.String),
  errorId: Schema.optionalKey(
    Schema.String.annotate({ description: "Id under which the full cause was logged (internal errors only)" })
  ),
  issues: Schema.optionalKey(Schema.Array(ProblemIssue))
}).annotate({ identifier: "Problem", description: "An RFC 9457 problem document" })

/** The encoded form of a problem document. */
export type Problem = typeof Problem.Type

/** The kinds of problem the gateway reports, with their status and title. */
export const kinds = {
  "invalid-json": { status: 400, title: "The request body is not valid JSON" },
  "invalid-input": { status: 400, title: "The input does not match the command's schema" },
  "unauthorized": { status: 401, title: "Missing or invalid credentials" },
  "not-found": { status: 404, title: "No such route" },
  "body-too-large": { status: 413, title: "The request body is too large" },
  "internal-error": { status: 500, title: "Internal error" },
  "invalid-reply": { status: 502, title: "The service sent an invalid reply" },
  "no-responder": { status: 503, title: "No instance of the service is available" },
  "bridge-unavailable": { status: 503, title: "The message bridge is unavailable" },
  "not-ready": { status: 503, title: "The gateway is not ready" },
  "timeout": { status: 504, title: "The service did not reply in time" }
} as const

/** A kind of problem. */
export type Kind = keyof typeof kinds

/** What every response carries: the request's correlation id and trace context. */
export interface EdgeInfo {
  readonly correlationId: string
  readonly traceparent: string
  readonly tracestate: string | undefined
  /** The W3C trace id (the second field of `traceparent`). */
  readonly traceId: string
}

/** The headers every response carries. */
export const edgeHeaders = (edge: EdgeInfo): Record<string, string> => {
  const headers: Record<string, string> = {
    "x-correlation-id": edge.correlationId,
    traceparent: edge.traceparent
  }
  if (edge.tracestate !== undefined) headers.tracestate = edge.tracestate
  return headers
}

/** Extra members of a problem document. */
export interface ProblemExtras {
  readonly detail?: string | undefined
  readonly errorId?: string | undefined
  readonly issues?: ReadonlyArray<typeof ProblemIssue.Type> | undefined
  /** Extra response headers, e.g. `WWW-Authenticate`. */
  readonly headers?: Record<string, string> | undefined
}

/** The problem document of a kind, with the request's ids. */
export const problemOf = (kind: Kind, edge: EdgeInfo, extras: ProblemExtras = {}): Problem => {
  const { status, title } = kinds[kind]
  return {
    type: `urn:herald:problem:${kind}`,
    title,
    status,
    ...(extras.detail === undefined ? {} : { detail: extras.detail }),
    correlationId: edge.correlationId,
    traceId: edge.traceId,
    ...(extras.errorId === undefined ? {} : { errorId: extras.errorId }),
    ...(extras.issues === undefined ? {} : { issues: extras.issues })
  }
}

/** An `application/problem+json` response of a kind, with the edge headers. */
export const problemResponse = (
  kind: Kind,
  edge: EdgeInfo,
  extras: ProblemExtras = {}
): HttpServerResponse.HttpServerResponse =>
  ProblemDetails.toResponse(problemOf(kind, edge, extras)).pipe(
    HttpServerResponse.setHeaders(Headers.fromInput({ ...extras.headers, ...edgeHeaders(edge) }))
  )

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

/** The issues of a schema error, each with its path and message (never the offending value). */
export const issuesOf = (error: Schema.SchemaError): ReadonlyArray<typeof ProblemIssue.Type> =>
  formatIssues(error.issue).issues.map((issue) => ({
    path: (issue.path ?? []).map((segment) => {
      const key = typeof segment === "object" && segment !== null ? segment.key : segment
      return typeof key === "number" ? key : String(key)
    }),
    message: issue.message
  }))

/**
 * The problem kind of a Herald call error. `RemoteDefect` is an internal error whose `errorId` is the
 * one the serving instance logged; `InvalidInput` is the receiver's own validation (e.g. a version skew).
 */
export const callErrorResponse = (error: CallError, edge: EdgeInfo): HttpServerResponse.HttpServerResponse => {
  switch (error._tag) {
    case "Timeout":
      return problemResponse("timeout", edge, { detail: `no reply within ${error.timeoutMs} ms` })
    case "NoResponder":
      return problemResponse("no-responder", edge)
    case "BridgeError":
      return problemResponse("bridge-unavailable", edge)
    case "InvalidInput":
      return problemResponse("invalid-input", edge, { detail: error.issue })
    case "InvalidOutput":
      return problemResponse("invalid-reply", edge)
    case "RemoteDefect":
      return problemResponse("internal-error", edge, { errorId: error.errorId })
    case "MessageTooLarge":
      return problemResponse("body-too-large", edge, { detail: `at most ${error.limit} bytes once encoded` })
  }
}
