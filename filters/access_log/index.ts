/**
 * access_log: one structured pino line per finished exchange (for L4, per
 * connection): who, where it went, how long, how many bytes, and the error
 * code when it failed. Written through the listener's child logger.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FilterFactory, PhaseFilter } from '../../src/filter';

const AccessLogConfig = Type.Object(
  {
    level: Type.Optional(
      Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace'].map((l) => Type.Literal(l)), {
        description: 'Level of successful exchanges (failed ones log at warn or above).',
        default: 'info',
      }),
    ),
    only_errors: Type.Optional(Type.Boolean({ description: 'Log failed exchanges only.', default: false })),
    sample: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'Fraction of successful exchanges to log (failed ones always are).', default: 1 })),
  },
  { additionalProperties: false },
);

type AccessLogConfig = Static<typeof AccessLogConfig>;

export const accessLogFilter: FilterFactory<AccessLogConfig> = {
  type: 'access_log',
  description: 'Logs each finished request or connection with pino.',
  schema: AccessLogConfig,
  create(config, ctx): PhaseFilter {
    const log = ctx.logger.child({ log: 'access' });
    const level = config.level ?? 'info';
    const onlyErrors = config.only_errors ?? false;
    const sample = config.sample ?? 1;
    return {
      kind: 'phase',
      name: ctx.name,
      completesOnErrorOnly: onlyErrors || sample === 0,
      onComplete(ex) {
        const err = ex.error;
        if (err === null && (onlyErrors || (sample < 1 && Math.random() >= sample))) return;
        const line = {
          protocol: ex.protocol,
          client: `${ex.clientAddress}:${ex.clientPort}`,
          op: ex.operation || undefined,
          route: ex.route,
          cluster: ex.cluster?.name,
          upstream: ex.endpoint?.address,
          duration_ms: Math.round((performance.now() - ex.startedAt) * 1000) / 1000,
          ...ex.info,
          reply_bytes: ex.replyBytes >= 0 ? ex.replyBytes : undefined,
          error: err ? err.code : undefined,
          reason: err ? err.message : undefined,
        };
        if (err) log.warn(line, 'exchange failed');
        else log[level as 'info'](line, 'exchange');
      },
    };
  },
};
