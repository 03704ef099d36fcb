/**
 * The shape of command-table.json, as COMMAND (Redis 7) describes each
 * command. Key specs: begin_search says where the search for keys starts
 * (a fixed index, or just after a keyword searched for from `startFrom`,
 * counted from the end when negative); find_keys says which arguments from
 * there are keys (a range whose `lastKey` is relative to the start, or
 * counted from the end when negative, with `limit` dividing the rest; or a
 * count held in the argument at `keyNumIdx`).
 */

export type BeginSearchJson =
  | { type: 'index'; index: number }
  | { type: 'keyword'; keyword: string; startFrom: number }
  | { type: 'unknown' };

export type FindKeysJson =
  | { type: 'range'; lastKey: number; keyStep: number; limit: number }
  | { type: 'keynum'; keyNumIdx: number; firstKey: number; keyStep: number }
  | { type: 'unknown' };

export interface KeySpecJson {
  /** RO RW OW RM, access update insert delete, not_key incomplete variable_flags. */
  flags: string[];
  beginSearch: BeginSearchJson;
  findKeys: FindKeysJson;
  notes?: string;
}

export interface CommandTableEntry {
  /** Exact count if positive, minimum count if negative (the name counts). */
  arity: number;
  flags: string[];
  /** Legacy key range: first, last (negative: from the end), step; 0 0 0 when no keys. */
  firstKey: number;
  lastKey: number;
  step: number;
  /** ACL categories without '@'. */
  acl: string[];
  /** Cluster hints, e.g. request_policy:all_shards, response_policy:agg_sum, nondeterministic_output. */
  tips: string[];
  keySpecs: KeySpecJson[];
  /** From COMMAND DOCS. */
  group?: string;
  since?: string;
  deprecatedSince?: string;
  replacedBy?: string;
  docFlags?: string[];
  /** Uppercase subcommand names; each is an entry of its own under "PARENT|SUB". */
  subcommands?: string[];
}

export interface CommandTableFile {
  source: string;
  commands: Record<string, CommandTableEntry>;
}
