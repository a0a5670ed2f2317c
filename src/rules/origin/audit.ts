// The origin rule in the self-audit: every database file loads, and its data (by the build date
// in the file) is not older than the rule's max_age. An old country database keeps judging by
// last year's allocations; a missing one judges nobody.
import type { RuleAuditPart } from '../../policy/rule-parts.js';
import type { OriginConfig } from './schema.js';
import { MmdbFile } from './database.js';

const DAY_MS = 86_400_000;
const days = (ms: number) => Math.round((ms / DAY_MS) * 10) / 10;

/** One probe per database file of an active origin rule. */
export const originAudit: RuleAuditPart<OriginConfig> = {
  probes: (config, ctx) =>
    (config?.databases ?? []).map((path) => ({
      name: `origin-db:${path}`,
      async run() {
        const f = new MmdbFile(path, config!.reload_check);
        try {
          f.load();
        } catch (err) {
          return {
            ok: false,
            detail: `${(err as NodeJS.ErrnoException).code === 'ENOENT' ? `${path}: file not found` : (err as Error).message}; the origin rule judges nobody with it`,
          };
        }
        const s = f.status();
        const age = ctx.now() - s.builtAt!;
        const ok = age <= config!.max_age;
        return {
          ok,
          detail: `${path}: ${s.type}, built ${new Date(s.builtAt!).toISOString().slice(0, 10)}, ${days(age)} day(s) old${ok ? '' : ` (older than max_age ${days(config!.max_age)} days: is geoipupdate running?)`}`,
          database_type: s.type,
          database_age_s: Math.round(age / 1000),
        };
      },
    })),
};
