/** Types for the part of kafkajs's internal protocol encoder that engine/kafkajs_encoder.ts patches. */
declare class Encoder {
  constructor(initialSize?: number);
  get buffer(): Uint8Array;
  writeUVarInt(value: number): this;
  writeVarInt(value: number): this;
  writeVarLong(value: unknown): this;
  static encodeZigZag(value: number): number;
  static encodeZigZag64(value: unknown): unknown;
}
export default Encoder;
