// The disclaimer rule around the MIME work: its YAML, which text a message gets, the marker
// header, our own DKIM signature, monitor mode, failures, and the spool directory.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import type { Modification, Rule, Verdict } from '../../src/policy/types.js';
import { disclaimerRule, disclaimerSchema, dkimDomains, type DisclaimerConfig } from '../../src/rules/disclaimer.js';
import { fakeEnv, fakeMessage, loadCorpusPolicy, runDisclaimer } from '../golden/disclaimer/run-case.js';
import { kitConnection, kitInput, runPhase } from '../support/rule-kit.js';

const { settings, rule: corpusRule } = loadCorpusPolicy();
const spool = mkdtempSync(join(tmpdir(), 'relayguard-disclaimer-rule-'));
after(() => rmSync(spool, { recursive: true, force: true }));
const local = { ...settings, server: { ...settings.server, spool_dir: spool } };

const crlf = (s: string) => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'utf8');
const PLAIN = (extraHeaders = '') =>
  crlf(`From: a@example.test\nSubject: hi\n${extraHeaders}Content-Type: text/plain; charset=utf-8\n\nHello.\n`);
const config = (over: Partial<DisclaimerConfig> = {}): DisclaimerConfig => ({ ...corpusRule, ...over });
const bodyOf = (mods: Modification[] | undefined) => mods?.find((m) => m.type === 'replaceBody');

describe('disclaimer YAML', () => {
  it('parses sizes, defaults and per-domain texts', () => {
    const c = disclaimerSchema.parse({
      outbound: { text: 'x' },
      max_part_size: '1MiB',
      per_domain: { 'example.test': { text: 'y', html: '<p>y</p>' } },
    });
    assert.equal(c.max_part_size, 1024 * 1024);
    assert.equal(c.marker_header, 'X-Relayguard-Disclaimer');
    assert.equal(c.skip_if_dkim_signed, true);
    assert.equal(c.mode, 'enforce');
  });

  it('refuses unknown keys and a block without any text', () => {
    assert.equal(disclaimerSchema.safeParse({ outbound: { text: 'x' }, footer: 'y' }).success, false);
    assert.equal(disclaimerSchema.safeParse({ outbound: { text: 'x', htm: 'y' } }).success, false);
    assert.equal(disclaimerSchema.safeParse({ mode: 'enforce' }).success, false);
    assert.equal(disclaimerSchema.safeParse({ outbound: { text: '   ' } }).success, false);
  });

  it('is part of the policy file', () => {
    const r = parsePolicyText('rules:\n  disclaimer:\n    inbound: { text: "From outside." }\n', 'p.yaml');
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.errors));
  });
});

describe('which text', () => {
  it('outbound gets the outbound text, inbound the notice', async () => {
    const out = await runDisclaimer(config(), local, PLAIN(), 'outbound', 'a@example.test');
    assert.match(out.output.toString('latin1'), /This email is confidential and intended/);
    const inb = await runDisclaimer(config(), local, PLAIN(), 'inbound', 'c@example.org');
    assert.match(inb.output.toString('latin1'), /This message came from outside example\.test/);
    const marker = inb.verdict.mods?.find((m) => m.type === 'addHeader' && m.name === 'X-Relayguard-Disclaimer');
    assert.match(marker && marker.type === 'addHeader' ? marker.value : '', /^inbound; id=[0-9a-f]{12}$/);
    // A 7bit ASCII part stays 7bit: the body only grows, no header is changed.
    assert.ok(!inb.verdict.mods?.some((m) => m.type !== 'addHeader' && m.type !== 'replaceBody'));
    assert.ok(
      inb.output.includes(PLAIN().subarray(PLAIN().indexOf('\r\n\r\n') + 4)),
      'the original body bytes come first',
    );
  });

  it('a sender domain (or subdomain) with its own text gets that text', async () => {
    const r = await runDisclaimer(config(), local, PLAIN(), 'outbound', 'x@sales.de.example.test');
    // The part is US-ASCII 7bit: the text's ASCII form goes in, the part is not re-encoded.
    assert.match(r.output.toString('latin1'), /vertraulich, nur fur den/);
  });

  it('a direction without a text passes without a word', async () => {
    const r = await runDisclaimer(config({ inbound: undefined }), local, PLAIN(), 'inbound', 'c@example.org');
    assert.deepEqual(r.verdict, { action: 'continue' });
  });
});

describe('reasons to leave a message alone', () => {
  it('our marker with the same text id, on outbound mail only', async () => {
    const first = await runDisclaimer(config(), local, PLAIN(), 'outbound', 'a@example.test');
    const marker = first.verdict.mods!.find((m) => m.type === 'addHeader' && m.name === 'X-Relayguard-Disclaimer');
    assert.ok(marker && marker.type === 'addHeader');
    const again = await runDisclaimer(
      config(),
      local,
      PLAIN(`X-Relayguard-Disclaimer: ${marker.value}\n`),
      'outbound',
      'a@example.test',
    );
    assert.equal(again.verdict.mods, undefined);
    assert.equal(again.verdict.details?.code, 'already-present');
    // Forged on inbound mail: ignored, the notice is still added.
    const forged = await runDisclaimer(
      config(),
      local,
      PLAIN('X-Relayguard-Disclaimer: inbound; id=whatever\n'),
      'inbound',
      'c@example.org',
    );
    assert.ok(bodyOf(forged.verdict.mods));
  });

  it('a DKIM signature of a local domain on outbound mail, unless configured otherwise', async () => {
    const dkim =
      'DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\n d=Mail.Example.Test; s=sel; h=from:to; bh=abc=; b=def=\n';
    assert.deepEqual(dkimDomains(fakeMessage(PLAIN(dkim), 'outbound', 'a@example.test').headers), [
      'mail.example.test',
    ]);
    const signed = await runDisclaimer(config(), local, PLAIN(dkim), 'outbound', 'a@example.test');
    assert.equal(signed.verdict.details?.code, 'dkim-signed');
    assert.equal(signed.verdict.mods, undefined);
    const foreign = await runDisclaimer(
      config(),
      local,
      PLAIN(dkim.replace('Mail.Example.Test', 'example.org')),
      'outbound',
      'a@example.test',
    );
    assert.ok(bodyOf(foreign.verdict.mods));
    const allowed = await runDisclaimer(
      config({ skip_if_dkim_signed: false }),
      local,
      PLAIN(dkim),
      'outbound',
      'a@example.test',
    );
    assert.ok(bodyOf(allowed.verdict.mods));
    // Inbound: a (forged) signature of ours does not hide the external-sender notice.
    const forged = await runDisclaimer(config(), local, PLAIN(dkim), 'inbound', 'c@example.org');
    assert.match(forged.output.toString('latin1'), /came from outside/);
  });
});

describe('modes, failures, spool', () => {
  it('monitor mode: the engine records the modification, applies nothing and releases the body at once', async () => {
    const rule = disclaimerRule.create(config({ mode: 'monitor' }), fakeEnv(local));
    // The rule itself does not know its mode: it plans the change as in enforce mode.
    const verdicts: Verdict[] = [];
    const watched: Rule = {
      ...rule,
      handlers: {
        eom: async (input) => {
          const v = await rule.handlers.eom!(input);
          verdicts.push(v);
          return v;
        },
      },
    };
    const msg = fakeMessage(PLAIN(), 'outbound', 'a@example.test');
    const result = await runPhase(
      watched,
      'eom',
      kitInput(kitConnection({ log: msg.log }), msg, { signal: AbortSignal.timeout(5000) }),
    );
    assert.deepEqual(result.mods, []);
    assert.equal(result.trace[0]!.monitor, true);
    assert.ok(result.trace[0]!.details?.parts);
    const b = bodyOf(verdicts[0]!.mods);
    assert.ok(b && b.type === 'replaceBody');
    assert.throws(() => b.body.stream(), /released/);
  });

  it('a message that cannot be read is delivered as it is, with the error in the verdict', async () => {
    const rule = disclaimerRule.create(config(), fakeEnv(local));
    const msg = fakeMessage(PLAIN(), 'outbound', 'a@example.test');
    const broken = {
      ...msg,
      source: {
        ...msg.source,
        message: () =>
          new Readable({
            read() {
              this.destroy(new Error('disk on fire'));
            },
          }),
      },
    };
    const conn = kitConnection({ log: msg.log });
    const v = await rule.handlers.eom!({ conn, msg: broken, signal: AbortSignal.timeout(5000) });
    assert.equal(v.action, 'continue');
    assert.equal(v.mods, undefined);
    assert.equal(v.details?.code, 'error');
    assert.match(String(v.details?.error), /disk on fire/);
  });

  it('leaves nothing in the spool directory', async () => {
    const r = await runDisclaimer(config(), local, PLAIN(), 'outbound', 'a@example.test');
    assert.ok(bodyOf(r.verdict.mods));
    assert.deepEqual(readdirSync(spool), []);
  });
});
