/**
 * ApiVersions (key 18).
 *   Request v0-2: (empty)
 *   Request v3 (flexible): client_software_name compact_string, client_software_version compact_string, _tagged
 *   Response v0: error_code int16, api_keys [api_key int16, min_version int16, max_version int16]
 *   Response v1-2: ... throttle_time_ms int32
 *   Response v3: error_code, api_keys compact[api_key, min, max, _tagged], throttle_time_ms, _tagged
 * The response header is always v0, even for v3 (clients cannot know the version before parsing it).
 */
import type { KafkaReader } from '../reader';
import type { KafkaWriter } from '../writer';
import { SUPPORTED } from '../api-keys';

export interface ApiVersionsRequest {
  clientSoftwareName: string | null;
  clientSoftwareVersion: string | null;
}

export function decodeApiVersionsRequest(r: KafkaReader, v: number): ApiVersionsRequest {
  if (v < 3) return { clientSoftwareName: null, clientSoftwareVersion: null };
  const clientSoftwareName = r.string();
  const clientSoftwareVersion = r.string();
  r.taggedFields();
  return { clientSoftwareName, clientSoftwareVersion };
}

/** The response; for an unsupported version call with v = 0 and UNSUPPORTED_VERSION (clients fall back from it). */
export function encodeApiVersionsResponse(w: KafkaWriter, v: number, errorCode: number): void {
  w.int16(errorCode);
  w.array(SUPPORTED, (w, a) => {
    w.int16(a.key).int16(a.min).int16(a.max).tags();
  });
  if (v >= 1) w.int32(0);
  w.tags();
}
