// Codec against frames captured from a real Postfix 3.7.11, plus length checks.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  Action,
  ALL_ACTIONS,
  ALL_PROTOCOL_V6,
  Cmd,
  DEFAULT_MAX_FRAME_LENGTH,
  MAX_BODY_CHUNK,
  Proto,
  Reply,
} from '../../src/protocol/constants.js';
import { decodeCommand } from '../../src/protocol/decode.js';
import * as enc from '../../src/protocol/encode.js';
import { encodeFrame, FrameDecoder, FrameError } from '../../src/protocol/frame.js';
import { formatReply, isValidReply } from '../../src/protocol/smtp-reply.js';

const golden = JSON.parse(
  readFileSync(new URL('../../../test/golden/frames/postfix-3.7.11.json', import.meta.url), 'utf8'),
) as {
  mta_to_milter: Record<string, string>;
  milter_to_mta: Record<string, string>;
};
const hex = (k: string) => Buffer.from(golden.mta_to_milter[k]!, 'hex');
const decodeOne = (b: Buffer) => {
  const frames = new FrameDecoder().push(b);
  assert.equal(frames.length, 1);
  return decodeCommand(frames[0]!);
};

describe('constants', () => {
  it('match the milter v6 wire values', () => {
    assert.equal(ALL_ACTIONS, 0x1ff);
    assert.equal(ALL_PROTOCOL_V6, 0x1fffff);
    assert.equal(Action.SETSYMLIST, 0x100);
    assert.equal(Proto.HDR_LEADSPC, 0x100000);
    assert.equal(Proto.NR_HDR, 0x80);
    assert.equal(Cmd.OPTNEG, 'O'.charCodeAt(0));
    assert.equal(Cmd.QUIT_NC, 'K'.charCodeAt(0));
    assert.equal(Reply.REPLYCODE, 'y'.charCodeAt(0));
    assert.equal(Reply.REPLBODY, 'b'.charCodeAt(0));
    assert.equal(MAX_BODY_CHUNK, 65535);
    assert.ok(DEFAULT_MAX_FRAME_LENGTH > 102400, 'Postfix sends header frames up to header_size_limit');
  });
});

describe('decoding Postfix frames', () => {
  it('OPTNEG', () => {
    assert.deepEqual(decodeOne(hex('optneg')), { type: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1fffff });
  });
  it('CONNECT over IPv4 and IPv6', () => {
    assert.deepEqual(decodeOne(hex('connect_v4')), {
      type: 'connect',
      hostname: 'localhost',
      family: 'inet',
      port: 38324,
      address: '127.0.0.1',
    });
    assert.deepEqual(decodeOne(hex('connect_v6')), {
      type: 'connect',
      hostname: '[::1]',
      family: 'inet6',
      port: 43828,
      address: '::1',
    });
  });
  it('an empty macro packet and a queue id macro', () => {
    assert.deepEqual(decodeOne(hex('macro_helo_empty')), { type: 'macro', stage: 'H', macros: [] });
    assert.deepEqual(decodeOne(hex('macro_header_qid')), { type: 'macro', stage: 'L', macros: [['i', '3881821C25A']] });
  });
  it('HEADER, EOM, ABORT', () => {
    assert.deepEqual(decodeOne(hex('header_subject')), { type: 'header', name: 'Subject', value: 'mods test' });
    assert.equal(decodeOne(hex('eom')).type, 'eom');
    assert.equal(decodeOne(hex('abort')).type, 'abort');
  });
  it('frames split at every byte or packed together', () => {
    const all = Buffer.concat([hex('optneg'), hex('connect_v4'), hex('macro_header_qid'), hex('header_subject')]);
    const d = new FrameDecoder();
    const got = [];
    for (let i = 0; i < all.length; i++) got.push(...d.push(all.subarray(i, i + 1)));
    assert.deepEqual(got.map((f) => String.fromCharCode(f.command)).join(''), 'OCDL');
    assert.equal(new FrameDecoder().push(all).length, 4);
  });
});

describe('encoding replies as Postfix accepted them', () => {
  const want = (k: string) => Buffer.from(golden.milter_to_mta[k]!, 'hex');
  it('OPTNEG, CONTINUE, ADDHEADER, CHGHEADER delete, multi-line REPLYCODE', () => {
    assert.deepEqual(enc.optneg({ actions: 0x1ff, protocol: 0 }), want('optneg_all_actions'));
    assert.deepEqual(enc.continue_(), want('continue'));
    assert.deepEqual(enc.addHeader('X-Added', 'appended value'), want('addheader'));
    assert.deepEqual(enc.changeHeader(1, 'X-Delete-Me', ''), want('chgheader_delete'));
    const text = formatReply({ code: 550, enhanced: '5.7.1', text: 'First line 100% sure\nSecond line' });
    assert.deepEqual(enc.replyCode(text), want('multiline_reply'));
  });
  it('OPTNEG with macro lists per stage', () => {
    const f = enc.optneg({ actions: 0x1ff, protocol: 0x100800, macros: { 2: ['{mail_addr}', 'i'], 5: ['i'] } });
    const payload = f.subarray(5);
    assert.equal(payload.readUInt32BE(12), 2);
    assert.equal(payload.subarray(16).toString('latin1'), '{mail_addr} i\0\0\0\0\u0005i\0');
  });
  it('a body replacement head announces its payload (at most 65535 bytes) and the REPLBODY command', () => {
    const head = enc.replBodyHead(MAX_BODY_CHUNK);
    assert.equal(head.length, 5);
    assert.equal(head.readUInt32BE(0), MAX_BODY_CHUNK + 1);
    assert.equal(head[4], Reply.REPLBODY);
    assert.equal(enc.replBodyHead(0).readUInt32BE(0), 1, 'an empty body is one empty frame');
    assert.throws(() => enc.replBodyHead(MAX_BODY_CHUNK + 1), RangeError);
  });
  it('strings with NUL are refused', () => {
    assert.throws(() => enc.addRcpt('a\0b'), RangeError);
    assert.throws(() => enc.addHeader('X-A', 'a\0b'), RangeError);
  });
});

describe('frame length checks', () => {
  it('refuses length 0 and lengths over the limit before allocating', () => {
    assert.throws(() => new FrameDecoder().push(Buffer.from([0, 0, 0, 0])), FrameError);
    assert.throws(() => new FrameDecoder(1024).push(Buffer.from([0, 0, 4, 1])), /exceeds limit/);
    // Only the 4 length bytes arrived: still refused at once, nothing waits for 2 GB.
    assert.throws(() => new FrameDecoder().push(Buffer.from([0x7f, 0xff, 0xff, 0xff])), /exceeds limit/);
  });
  it('refuses malformed payloads', () => {
    const bad = [
      encodeFrame(Cmd.OPTNEG, Buffer.alloc(4)),
      encodeFrame(Cmd.CONNECT, Buffer.from('host')),
      encodeFrame(Cmd.HEADER, Buffer.from('Subject\0no-nul')),
      encodeFrame(Cmd.MACRO, Buffer.from('Cj\0')),
      encodeFrame(Cmd.DATA, Buffer.from('x')),
      encodeFrame(0x5a),
    ];
    for (const b of bad) assert.throws(() => decodeCommand(new FrameDecoder().push(b)[0]!), FrameError);
  });
});

describe('SMTP reply formatting', () => {
  it('escapes %, strips CR/LF and non-printables, checks class', () => {
    assert.equal(formatReply({ code: 550, enhanced: '5.7.1', text: '100% bad\r' }), '550 5.7.1 100%% bad');
    assert.equal(formatReply({ code: 451, enhanced: '4.3.0', text: 'caf\u00e9' }), '451 4.3.0 caf?');
    assert.equal(isValidReply({ code: 550, enhanced: '4.7.1', text: '' }), false);
    assert.equal(isValidReply({ code: 250, enhanced: '2.0.0', text: '' }), false);
    assert.throws(() => formatReply({ code: 550, enhanced: '4.7.1', text: 'x' }), RangeError);
  });
  it('never leaves a lone % when cutting a long line', () => {
    const r = formatReply({ code: 550, enhanced: '5.7.1', text: '%'.repeat(1000) });
    assert.equal(/(^|[^%])%(%%)*($|[^%])/.test(r.slice(10)), false);
  });
});
