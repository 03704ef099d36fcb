/**
 * The APIs this broker facade answers, the versions it parses, and where
 * each API's flexible versions (compact types, tagged fields, request header
 * v2 / response header v1) begin.
 */
export const ApiKey = {
  Produce: 0,
  Fetch: 1,
  ListOffsets: 2,
  Metadata: 3,
  OffsetCommit: 8,
  OffsetFetch: 9,
  FindCoordinator: 10,
  JoinGroup: 11,
  Heartbeat: 12,
  LeaveGroup: 13,
  SyncGroup: 14,
  DescribeGroups: 15,
  ListGroups: 16,
  ApiVersions: 18,
  CreateTopics: 19,
  DeleteTopics: 20,
  InitProducerId: 22,
} as const;

export interface ApiRange {
  key: number;
  name: string;
  min: number;
  max: number;
  /** First flexible version (Infinity when none exists in the protocol yet). */
  flexibleFrom: number;
}

/**
 * Ranges advertised in ApiVersions. Clients take min(their max, ours) per key:
 * kafkajs 2.2.4 and librdkafka 2.0.2 both land inside these.
 */
export const SUPPORTED: readonly ApiRange[] = [
  { key: ApiKey.Produce, name: 'Produce', min: 3, max: 7, flexibleFrom: 9 },
  { key: ApiKey.Fetch, name: 'Fetch', min: 4, max: 11, flexibleFrom: 12 },
  { key: ApiKey.ListOffsets, name: 'ListOffsets', min: 1, max: 3, flexibleFrom: 6 },
  { key: ApiKey.Metadata, name: 'Metadata', min: 0, max: 7, flexibleFrom: 9 },
  { key: ApiKey.OffsetCommit, name: 'OffsetCommit', min: 0, max: 7, flexibleFrom: 8 },
  { key: ApiKey.OffsetFetch, name: 'OffsetFetch', min: 1, max: 7, flexibleFrom: 6 },
  { key: ApiKey.FindCoordinator, name: 'FindCoordinator', min: 0, max: 2, flexibleFrom: 3 },
  { key: ApiKey.JoinGroup, name: 'JoinGroup', min: 0, max: 5, flexibleFrom: 6 },
  { key: ApiKey.Heartbeat, name: 'Heartbeat', min: 0, max: 3, flexibleFrom: 4 },
  { key: ApiKey.LeaveGroup, name: 'LeaveGroup', min: 0, max: 3, flexibleFrom: 4 },
  { key: ApiKey.SyncGroup, name: 'SyncGroup', min: 0, max: 3, flexibleFrom: 4 },
  { key: ApiKey.DescribeGroups, name: 'DescribeGroups', min: 0, max: 2, flexibleFrom: 5 },
  { key: ApiKey.ListGroups, name: 'ListGroups', min: 0, max: 2, flexibleFrom: 3 },
  { key: ApiKey.ApiVersions, name: 'ApiVersions', min: 0, max: 3, flexibleFrom: 3 },
  { key: ApiKey.CreateTopics, name: 'CreateTopics', min: 0, max: 4, flexibleFrom: 5 },
  { key: ApiKey.DeleteTopics, name: 'DeleteTopics', min: 0, max: 3, flexibleFrom: 4 },
  { key: ApiKey.InitProducerId, name: 'InitProducerId', min: 0, max: 1, flexibleFrom: 2 },
];

const byKey: (ApiRange | undefined)[] = [];
for (const r of SUPPORTED) byKey[r.key] = r;

export function apiRange(key: number): ApiRange | undefined {
  return key >= 0 ? byKey[key] : undefined;
}

export function apiName(key: number): string {
  return byKey[key]?.name ?? `api_${key}`;
}

export function isSupported(key: number, version: number): boolean {
  const r = apiRange(key);
  return r !== undefined && version >= r.min && version <= r.max;
}

export function isFlexible(key: number, version: number): boolean {
  const r = apiRange(key);
  return r !== undefined && version >= r.flexibleFrom;
}
