/**
 * The one schema → JSON Schema compiler of the project, shared by the gateway's OpenAPI document and
 * by discovery announcements.
 *
 * Every schema is compiled in one pass (`SchemaRepresentation.toRepresentations`, draft 2020-12,
 * from each schema's JSON codec, so it describes what crosses the wire); named schemas (classes,
 * `identifier` annotations) become shared definitions that the returned schemas `$ref`.
 */
import { type JsonSchema, Schema, SchemaRepresentation } from "effect"

/** Compiles `schemas` together; the result's `schemas[i]` describes `schemas[i]`. Refs are `#/$defs/<name>`. */
export const compile = (schemas: ReadonlyArray<Schema.Top>): JsonSchema.MultiDocument<"draft-2020-12"> | undefined => {
  const asts = schemas.map((schema) => Schema.toCodecJson(schema).ast)
  if (asts.length === 0) return undefined
  const document = SchemaRepresentation.toRepresentations(asts as [typeof asts[0], ...typeof asts])
  return SchemaRepresentation.toJsonSchemaMultiDocument(document)
}
