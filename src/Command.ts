/**
 * Command contracts: a typed request/reply handled by exactly one instance of the owning service.
 *
 * A command is pure data (name and schemas), importable by callers without the implementation.
 */
import { type Result, Schema } from "effect"
import { DefinitionError } from "./BridgeError.ts"
import { checkName, checkUnique, checkUserEventName } from "./internal/names.ts"

/** A schema usable on the wire: decoding and encoding need no services. */
export type AnySchema = Schema.Codec<any, any, never, never>

/** A declared command error: a `Schema.TaggedError` class (or any schema of tagged values). */
export type AnyErrorSchema = Schema.Codec<{ readonly _tag: string }, any, never, never>

/** The options of `Command.make`. */
export interface CommandOptions<
  I extends AnySchema,
  O extends AnySchema,
  Errs extends ReadonlyArray<AnyErrorSchema>,
  Idem extends boolean
> {
  /** Schema of the input. Validated by the caller before sending and by the receiver on receipt. */
  readonly input: I
  /** Schema of the output. Validated by the handler's side when encoding and by the caller on receipt. */
  readonly output: O
  /** Declared errors (`Schema.TaggedError` classes), typed on the caller side. Tags must be distinct. */
  readonly errors?: Errs | undefined
  /** When set, every successful call also publishes its output as an event of this name. */
  readonly emits?: string | undefined
  /**
   * Declares that running the command twice with the same input has the effect of running it once.
   * Only idempotent commands accept a caller-side `retry` schedule. Default `false`.
   */
  readonly idempotent?: Idem | undefined
}

/** A command contract. */
export interface Command<
  Name extends string = string,
  I extends AnySchema = AnySchema,
  O extends AnySchema = AnySchema,
  Errs extends ReadonlyArray<AnyErrorSchema> = ReadonlyArray<AnyErrorSchema>,
  Idem extends boolean = boolean
> {
  readonly _tag: "Command"
  readonly name: Name
  readonly input: I
  readonly output: O
  readonly errors: Errs
  readonly emits: string | undefined
  readonly idempotent: Idem
  /** JSON codecs derived once from the schemas (what actually crosses the wire). */
  readonly codecs: {
    readonly input: Schema.Codec<I["Type"], unknown>
    readonly output: Schema.Codec<O["Type"], unknown>
    /** `undefined` when the command declares no errors. */
    readonly error: Schema.Codec<Errs[number]["Type"], unknown> | undefined
  }
  /** The codecs' parsers, compiled once. Schemas of a contract must be synchronous. */
  readonly wire: {
    readonly encodeInput: Parser<I["Type"]>
    readonly decodeInput: Parser<I["Type"]>
    readonly encodeOutput: Parser<unknown>
    readonly decodeOutput: Parser<O["Type"]>
    readonly encodeError: Parser<unknown> | undefined
    readonly decodeError: Parser<Errs[number]["Type"]> | undefined
    /** Whether a value is one of the declared errors. */
    readonly isError: (u: unknown) => boolean
  }
}

/** A synchronous schema parser: the parsed value or the schema's error. */
export type Parser<A> = (input: unknown) => Result.Result<A, Schema.SchemaError>

/** Any command, for constraints. */
export type Any = Command<string, AnySchema, AnySchema, ReadonlyArray<AnyErrorSchema>, boolean>

/** The decoded input type of a command. */
export type Input<C extends Any> = C["input"]["Type"]
/** The decoded output type of a command. */
export type Output<C extends Any> = C["output"]["Type"]
/** The union of a command's declared error types (`never` when none). */
export type Errors<C extends Any> = C["errors"][number]["Type"]

const tagOf = (schema: AnyErrorSchema): string | undefined => {
  const fields = (schema as { readonly fields?: { readonly _tag?: { readonly ast?: { readonly literal?: unknown } } } })
    .fields
  const literal = fields?._tag?.ast?.literal
  return typeof literal === "string" ? literal : undefined
}

/**
 * Defines a command.
 *
 * Throws a `DefinitionError` for an invalid name or event name, or two declared errors with one tag.
 *
 * @example
 * const Add = Command.make("add", {
 *   input: Schema.Struct({ a: Schema.Finite, b: Schema.Finite }),
 *   output: Schema.Struct({ sum: Schema.Finite }),
 *   errors: [Overflow],
 *   emits: "added"
 * })
 */
export const make = <
  const Name extends string,
  I extends AnySchema,
  O extends AnySchema,
  const Errs extends ReadonlyArray<AnyErrorSchema> = readonly [],
  const Idem extends boolean = false
>(name: Name, options: CommandOptions<I, O, Errs, Idem>): Command<Name, I, O, NoInfer<Errs>, NoInfer<Idem>> => {
  checkName("command", name)
  if (!Schema.isSchema(options.input) || !Schema.isSchema(options.output)) {
    throw new DefinitionError(`command ${name}: input and output must be Effect schemas`)
  }
  const errors = (options.errors ?? []) as unknown as Errs
  for (const e of errors) {
    if (!Schema.isSchema(e)) throw new DefinitionError(`command ${name}: every declared error must be an Effect schema`)
  }
  checkUnique(`command ${name}: declared error tags`, errors.map((e) => tagOf(e) ?? ""))
  if (options.emits !== undefined) checkUserEventName(`command ${name}: emitted event name`, options.emits)
  const errorCodec = errors.length === 0
    ? undefined
    : Schema.toCodecJson(errors.length === 1 ? errors[0]! : Schema.Union(errors))
  const inputCodec = Schema.toCodecJson(options.input)
  const outputCodec = Schema.toCodecJson(options.output)
  const isError = errorCodec === undefined ? () => false : Schema.is(Schema.toType(errorCodec))
  return {
    _tag: "Command",
    name,
    input: options.input,
    output: options.output,
    errors,
    emits: options.emits,
    idempotent: (options.idempotent ?? false) as Idem,
    codecs: {
      input: inputCodec as Schema.Codec<I["Type"], unknown>,
      output: outputCodec as Schema.Codec<O["Type"], unknown>,
      error: errorCodec as Schema.Codec<Errs[number]["Type"], unknown> | undefined
    },
    wire: {
      encodeInput: Schema.encodeUnknownResult(inputCodec),
      decodeInput: Schema.decodeUnknownResult(inputCodec),
      encodeOutput: Schema.encodeUnknownResult(outputCodec),
      decodeOutput: Schema.decodeUnknownResult(outputCodec),
      encodeError: errorCodec && Schema.encodeUnknownResult(errorCodec),
      decodeError: errorCodec && Schema.decodeUnknownResult(errorCodec),
      isError
    }
  }
}
