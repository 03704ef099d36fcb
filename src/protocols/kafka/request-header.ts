/**
 * Request header v1 (classic versions) / v2 (flexible versions):
 *   api_key int16, api_version int16, correlation_id int32, client_id nullable_string (always int16 length),
 *   _tagged_fields (v2 only)
 */
import { KafkaReader } from './reader';
import { isFlexible } from './api-keys';

export interface RequestHeader {
  apiKey: number;
  apiVersion: number;
  correlationId: number;
  clientId: string;
  flexible: boolean;
}

/** The first 8 bytes, which every request has whatever its API (the frame decoder guarantees 10). */
export function readHeaderStart(r: KafkaReader): RequestHeader {
  return { apiKey: r.int16(), apiVersion: r.int16(), correlationId: r.int32(), clientId: '', flexible: false };
}

/** The rest of the header of a supported API version; leaves `r` at the body, in the body's encoding. */
export function readHeaderRest(r: KafkaReader, h: RequestHeader): void {
  h.flexible = isFlexible(h.apiKey, h.apiVersion);
  h.clientId = r.nullableString() ?? '';
  r.flex = h.flexible;
  r.taggedFields();
}
