// The audit's look at the origin rule's data: every database file loads, and its data (by the
// build date in the file) is not older than the rule's max_age. An old country database keeps
// judging by last year's allocations; a missing one judges nobody.
import type { PolicyConfig } from '../rules/policy-schema.js';
import { activeRule } from '../mta/requirements.js';
import { MmdbFile } from '../rules/origin/database.js';
import type { OriginConfig } from '../rules/origin.js';
import type { ProbeFn } from './service-probes.js';

const DAY_MS = 86_400_000;
const days = (ms: number) => Math.round((ms / DAY_MS) * 10) / 10;

/** One probe per database file of an active origin rule. */
export function originProbes(config: PolicyConfig, now: () => number = Date.now): Array<[string, ProbeFn]> {
  const rule = activeRule<OriginConfig>(config, 'origin');
  if (!rule) return [];
  return rule.databases.map((path): [string, ProbeFn] => [
    `origin-db:${path}`,
    async () => {
      const f = new MmdbFile(path, rule.reload_check);
      try {
        f.load();
      } catch (err) {
        return { ok: false, detail: `${(err as NodeJS.ErrnoException).code === 'ENOENT' ? `${path}: file not found` : (err as Error).message}; the origin rule judges nobody with it` };
      }
      const s = f.status();
      const age = now() - s.builtAt!;
      const ok = age <= rule.max_age;
      return {
        ok,
        detail: `${path}: ${s.type}, built ${new Date(s.builtAt!).toISOString().slice(0, 10)}, ${days(age)} day(s) old${ok ? '' : ` (older than max_age ${days(rule.max_age)} days: is geoipupdate running?)`}`,
        database_type: s.type,
        database_age_s: Math.round(age / 1000),
      };
    },
  ]);
}
