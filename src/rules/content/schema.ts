// The `rules: content:` block of the policy. Every pattern is compiled while the policy is
// validated, so a bad regular expression is a `relayguard validate` error with its line.
import { z } from 'zod';
import { byteSize } from '../../primitives/units.js';
import { modeField, perDirection } from '../common.js';
import { compileRegex, DETECTORS } from './patterns.js';

/** Where a pattern rule looks. */
const TARGETS = ['body', 'headers', 'subject'] as const;
export type Target = (typeof TARGETS)[number];

const DEFAULT_TAG_HEADER = 'X-Relayguard-Content';
/** The reference gateway's list: what Windows runs on a double click. */
const DEFAULT_BLOCKED_EXTENSIONS = ['exe', 'scr', 'js', 'vbs', 'bat', 'cmd', 'com', 'ps1'];
const DEFAULT_LIMITS = {
  max_depth: 20,
  max_parts: 500,
  max_header_size: 256 * 1024,
  max_text_per_part: 1024 * 1024,
} as const;
/** Fail closed: an archive that cannot be looked into completely is refused inbound and held outbound. */
const DEFAULT_ZIP = {
  scan: true,
  max_size: 8 * 1024 * 1024,
  max_entries: 1000,
  nested: true,
  unreadable: { inbound: 'reject', outbound: 'quarantine' },
} as const;

const direction = () => z.enum(['inbound', 'outbound', 'both']).default('both');
const oneOrMany = () =>
  z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]));

/** "exe", ".EXE" -> "exe". */
const extension = () =>
  z
    .string()
    .regex(/^\.?[A-Za-z0-9_~$-]{1,32}$/, 'not a file name extension (e.g. exe)')
    .transform((e) => e.replace(/^\./, '').toLowerCase());

/** "application/x-msdownload" or "application/*". */
const mediaType = () =>
  z
    .string()
    .regex(
      /^[A-Za-z0-9!#$&^_.+-]+\/(\*|[A-Za-z0-9!#$&^_.+-]+)$/,
      'not a media type (e.g. application/x-msdownload or application/*)',
    )
    .transform((t) => t.toLowerCase());

const zipSchema = z
  .object({
    /** List the member names of zip attachments and apply the extension list to them. */
    scan: z.boolean().default(DEFAULT_ZIP.scan),
    /** Largest zip (decoded) that is held in memory to be listed. */
    max_size: byteSize().default(DEFAULT_ZIP.max_size),
    max_entries: z.number().int().positive().default(DEFAULT_ZIP.max_entries),
    /** Also list zips inside the zip (one level). */
    nested: z.boolean().default(DEFAULT_ZIP.nested),
    /**
     * A zip that cannot be looked into completely (larger than max_size, broken, more than
     * max_entries, encrypted entries, zips nested deeper than one level). `accept` lets such an
     * archive through uninspected: what it hides is not checked.
     */
    unreadable: perDirection(z.enum(['accept', 'reject', 'quarantine', 'tag'])).default({ ...DEFAULT_ZIP.unreadable }),
  })
  .strict();

const attachmentsSchema = z
  .object({
    direction: direction(),
    blocked_extensions: z.array(extension()).default(DEFAULT_BLOCKED_EXTENSIONS),
    blocked_types: z.array(mediaType()).default([]),
    /** Largest attachment (decoded). */
    max_size: byteSize().optional(),
    zip: zipSchema.default(zipSchema.parse({})),
    /** One action, or { inbound, outbound }. */
    action: perDirection(z.enum(['reject', 'quarantine', 'tag'])).default('reject'),
  })
  .strict();

const limitsSchema = z
  .object({
    max_depth: z.number().int().positive().default(DEFAULT_LIMITS.max_depth),
    max_parts: z.number().int().positive().default(DEFAULT_LIMITS.max_parts),
    max_header_size: byteSize().default(DEFAULT_LIMITS.max_header_size),
    /** Decoded bytes of a text part held and searched at once; a longer part is searched all the same, window by window. */
    max_text_per_part: byteSize().default(DEFAULT_LIMITS.max_text_per_part),
    /** What happens to a message over max_depth, max_parts or max_header_size. */
    action: z.enum(['reject', 'tempfail']).default('reject'),
    /**
     * A MIME structure that readers disagree on (duplicate Content-Type fields, a stray line in
     * a header block): `inspect` every reading of it, or `reject` the message (with `action`).
     */
    ambiguous: z.enum(['inspect', 'reject']).default('inspect'),
  })
  .strict();

const patternRuleSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'rule names are letters, digits, "_", "." and "-"'),
    direction: direction(),
    phrase: oneOrMany().optional(),
    regex: oneOrMany().optional(),
    detector: z.enum(DETECTORS).optional(),
    where: z
      .union([z.enum(TARGETS), z.array(z.enum(TARGETS)).min(1)])
      .transform((v) => (Array.isArray(v) ? v : [v]))
      .default(['body']),
    case_sensitive: z.boolean().default(false),
    action: z.enum(['reject', 'quarantine', 'tag']),
  })
  .strict()
  .superRefine((r, ctx) => {
    const kinds = [r.phrase, r.regex, r.detector].filter((k) => k !== undefined).length;
    if (kinds !== 1) ctx.addIssue({ code: 'custom', message: 'give exactly one of phrase, regex or detector' });
    for (const source of r.regex ?? []) {
      try {
        compileRegex(source, r.case_sensitive);
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['regex'], message: (err as Error).message });
      }
    }
  });

export const contentSchema = z
  .object({
    mode: modeField(),
    /** Header added by `tag` actions; its value lists the rules that matched. */
    tag_header: z
      .string()
      .regex(/^[!-9;-~]+$/, 'not a header field name')
      .default(DEFAULT_TAG_HEADER),
    attachments: attachmentsSchema.default(attachmentsSchema.parse({})),
    limits: limitsSchema.default(limitsSchema.parse({})),
    rules: z.array(patternRuleSchema).default([]),
  })
  .strict()
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.rules.forEach((r, i) => {
      if (seen.has(r.name))
        ctx.addIssue({ code: 'custom', path: ['rules', i, 'name'], message: `duplicate rule name "${r.name}"` });
      seen.add(r.name);
    });
  });

export type ContentConfig = z.infer<typeof contentSchema>;
export type PatternRuleConfig = ContentConfig['rules'][number];
