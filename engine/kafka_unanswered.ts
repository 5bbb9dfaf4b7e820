/**
 * kafkajs's error for a broker that accepted the connection but never answered its first request (ApiVersions): after
 * the request timeout its connect resolves without the broker's API versions, and the next request fails with a bare
 * `Broker not connected` (kafkajs src/broker/index.js, notInitializedLookup), which start-up reported as the reason of a
 * KAFKA_BROKERS that is not Kafka (an HTTP port) or hung. It is given a reason saying what happened.
 */
import { LogUnavailableError } from "./errors.ts";
import { KAFKA_REQUEST_TIMEOUT_MS } from "./kafka_client.ts";

/** kafkajs's message for a request to a broker whose API versions were never read (a plain Error, no type or code). */
const NO_VERSIONS_MESSAGE = "Broker not connected";

/** `error` explained when it is kafkajs's bare error for a broker that never answered ApiVersions; else `error`. */
export function explainUnansweredBroker(error: unknown): unknown {
  if (!(error instanceof Error) || error.name !== "Error" || error.message !== NO_VERSIONS_MESSAGE) return error;
  return new LogUnavailableError(
    `the broker took the connection but did not answer its first request (ApiVersions) within ` +
      `${KAFKA_REQUEST_TIMEOUT_MS} ms: not a Kafka broker's address, or the broker hangs (kafkajs: ${error.message})`,
    { cause: error },
  );
}
