/** Types for the part of kafkajs's internal request queue that engine/kafkajs_request_queue.ts patches. */
interface PushedRequest {
  entry: { correlationId: number; resolve(response: unknown): void; reject(error: unknown): void };
  expectResponse: boolean;
  sendRequest(): void;
  requestTimeout?: number;
}
declare class RequestQueue {
  constructor(options: {
    maxInFlightRequests: number | null;
    requestTimeout: number;
    enforceRequestTimeout: boolean;
    clientId: string;
    broker: string;
    logger: unknown;
  });
  pending: unknown[];
  inflight: Map<number, unknown>;
  throttledUntil: number;
  throttleCheckTimeoutId: unknown;
  push(request: PushedRequest): void;
  fulfillRequest(response: { correlationId: number; payload: unknown; size: number }): void;
  maybeThrottle(clientSideThrottleTime: number | null): void;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
  destroy(): void;
}
export default RequestQueue;
