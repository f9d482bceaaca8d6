/**
 * Herald: typed, schema-validated message-based services on Effect.
 *
 * Contracts (`Command`, `Subscription`, `Service`, `Event`) are pure data; `Service.toLayer`
 * implements a service and `Client.make` calls one, over whichever bridge Layer is provided.
 */
export * as AmqpBridge from "./bridges/Amqp.ts"
export * as Bridge from "./Bridge.ts"
export * from "./BridgeError.ts"
export * as Client from "./Client.ts"
export * as Codec from "./Codec.ts"
export * as Command from "./Command.ts"
export * as Discovery from "./Discovery.ts"
export * as Envelope from "./Envelope.ts"
export * as Event from "./Event.ts"
export * as Filter from "./Filter.ts"
export * as HttpGateway from "./http/HttpGateway.ts"
export * as MemoryBridge from "./bridges/Memory.ts"
export * as NatsBridge from "./bridges/Nats.ts"
export * from "./MessageContext.ts"
export * as MessageSize from "./MessageSize.ts"
export * as Metrics from "./Metrics.ts"
export * as Observability from "./Observability.ts"
export * as MqttBridge from "./bridges/Mqtt.ts"
export * as Runtime from "./Runtime.ts"
export * as Service from "./Service.ts"
export * as Subscription from "./Subscription.ts"
