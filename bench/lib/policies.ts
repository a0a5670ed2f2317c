// The relayguard policies the benchmark runs, derived from the reference gateway's policy
// (examples/postfix/relayguard.yaml) as it is at run time, so the benchmark follows the rules
// as they land: only the switches below are changed.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument, type Document } from 'yaml';
import { slotConfigText } from '../../test/e2e/harness.js';

export type PolicyVariant =
  /** Every rule off except trace_header: the cost of relayguard itself. */
  | 'trace'
  /** The reference policy without clamd and without the disclaimer. */
  | 'policy'
  /** The reference policy without clamd, with the disclaimer (body rewriting). */
  | 'disclaimer'
  /** Only clamd scanning (and the trace header): relayguard's side of the clamav-milter comparison. */
  | 'antivirus'
  /** The whole reference policy: clamd and the disclaimer. */
  | 'full'
  /** 'full' with one clamd connection per scan (clamd.sessions: 0): the before of the IDSESSION pool. */
  | 'full-1conn'
  /** 'full' with server.heap: large (V8's own heap sizing): the before of the small heap profile. */
  | 'full-heap-large'
  /** 'antivirus' with one clamd connection per scan. */
  | 'antivirus-1conn'
  /** 'full' with the size limit and clamd's stream limit raised for the 50 MB message. */
  | 'full-large';

/** Every variant once (a Record, so the compiler refuses a list that misses one). */
const VARIANTS: Record<PolicyVariant, true> = {
  trace: true,
  policy: true,
  disclaimer: true,
  antivirus: true,
  full: true,
  'full-1conn': true,
  'full-heap-large': true,
  'antivirus-1conn': true,
  'full-large': true,
};
export const POLICY_VARIANTS = Object.keys(VARIANTS) as readonly PolicyVariant[];

/** Does the variant scan with clamd (so a benchmark tool has to start one)? */
export function scansWithClamd(variant: PolicyVariant): boolean {
  return (
    variant === 'antivirus' ||
    variant === 'full' ||
    variant === 'full-large' ||
    variant === 'full-1conn' ||
    variant === 'full-heap-large' ||
    variant === 'antivirus-1conn'
  );
}

/** The reference gateway's texts (rule 7), used when the reference policy has no disclaimer yet. */
const REFERENCE_DISCLAIMER = {
  mode: 'enforce',
  outbound: {
    text: 'This email is confidential and intended only for the named recipients. If you received it in error, please tell the sender and delete it.',
  },
  inbound: { text: 'This message came from outside example.test. Be careful with links and attachments.' },
};

const LARGE_LIMIT = '64MiB';
const LARGE_CLAMD_LIMIT = '80M';

function rules(doc: Document): string[] {
  const r = doc.getIn(['rules']) as { items?: Array<{ key: unknown }> } | undefined;
  return (r?.items ?? []).map((p) => String((p.key as { value?: unknown })?.value ?? p.key));
}

export interface PolicyPaths {
  referencePolicy: string;
  outDir: string;
  stateDir: string;
  postfixConfigDir: string;
  clamdAddress: string;
}

/** Writes the policy file for `variant`; returns its path. */
export function writePolicy(variant: PolicyVariant, p: PolicyPaths): string {
  const doc = parseDocument(slotConfigText(readFileSync(p.referencePolicy, 'utf8')));
  if (doc.errors.length) throw new Error(`${p.referencePolicy}: ${doc.errors[0]!.message}`);
  doc.setIn(['server', 'state_dir'], p.stateDir);
  // Postfix's smtpd runs as user postfix and must reach the unix socket.
  doc.setIn(['server', 'socket_mode'], '0666');
  doc.setIn(['mta', 'config_directory'], p.postfixConfigDir);
  const names = rules(doc);
  const setMode = (rule: string, mode: 'enforce' | 'off') => {
    if (names.includes(rule)) doc.setIn(['rules', rule, 'mode'], mode);
  };
  if (!names.includes('trace_header')) doc.setIn(['rules', 'trace_header'], { mode: 'enforce' });
  if (names.includes('antivirus')) doc.setIn(['rules', 'antivirus', 'clamd', 'address'], p.clamdAddress);
  const wantsDisclaimer =
    variant === 'disclaimer' ||
    variant === 'full' ||
    variant === 'full-large' ||
    variant === 'full-1conn' ||
    variant === 'full-heap-large';
  if (wantsDisclaimer && !names.includes('disclaimer')) doc.setIn(['rules', 'disclaimer'], REFERENCE_DISCLAIMER);
  switch (variant) {
    case 'trace':
      for (const r of names) if (r !== 'trace_header') setMode(r, 'off');
      break;
    case 'antivirus':
    case 'antivirus-1conn':
      for (const r of names) if (r !== 'trace_header' && r !== 'antivirus') setMode(r, 'off');
      setMode('antivirus', 'enforce');
      break;
    case 'policy':
      setMode('antivirus', 'off');
      setMode('disclaimer', 'off');
      break;
    case 'disclaimer':
      setMode('antivirus', 'off');
      setMode('disclaimer', 'enforce');
      break;
    case 'full':
    case 'full-1conn':
    case 'full-heap-large':
      setMode('antivirus', 'enforce');
      setMode('disclaimer', 'enforce');
      break;
    case 'full-large':
      setMode('antivirus', 'enforce');
      setMode('disclaimer', 'enforce');
      if (names.includes('size')) doc.setIn(['rules', 'size', 'max_bytes'], LARGE_LIMIT);
      if (names.includes('antivirus')) doc.setIn(['rules', 'antivirus', 'clamd', 'max_size'], LARGE_CLAMD_LIMIT);
      break;
  }
  if (variant === 'full-heap-large') doc.setIn(['server', 'heap'], 'large');
  if (variant.endsWith('-1conn') && names.includes('antivirus'))
    doc.setIn(['rules', 'antivirus', 'clamd', 'sessions'], 0);
  const path = join(p.outDir, `relayguard-${variant}.yaml`);
  writeFileSync(path, doc.toString());
  return path;
}

/** Which rules a policy file enables (for the results table). */
export function enabledRules(path: string): string[] {
  const doc = parseDocument(readFileSync(path, 'utf8'));
  return rules(doc).filter((r) => String(doc.getIn(['rules', r, 'mode']) ?? 'enforce') !== 'off');
}
