// Payload decoders for MTA -> milter commands. Pure functions: bytes in, typed message out.
// Strings stay latin1 (a lossless byte <-> char mapping) unless noted, because the MTA passes
// raw 8-bit data; callers decide how to display them.
import { Cmd, Family, OPTNEG_PAYLOAD_BYTES } from './constants.js';
import { FrameError, type Frame } from './frame.js';

export type MilterCommand =
  | { type: 'optneg'; version: number; actions: number; protocol: number }
  | { type: 'macro'; stage: string; macros: Array<[string, string]> }
  | { type: 'connect'; hostname: string; family: 'inet' | 'inet6' | 'unix' | 'unknown'; port: number; address: string }
  | { type: 'helo'; name: string }
  | { type: 'mail'; args: string[] }
  | { type: 'rcpt'; args: string[] }
  | { type: 'data' }
  | { type: 'header'; name: string; value: string }
  | { type: 'eoh' }
  | { type: 'body'; chunk: Buffer }
  | { type: 'eom'; chunk: Buffer }
  | { type: 'abort' }
  | { type: 'quit' }
  | { type: 'quitnc' }
  | { type: 'unknown'; line: string };

export type CommandType = MilterCommand['type'];

/** Split a payload of NUL-terminated strings. A trailing part without NUL is a protocol error. */
function splitStrings(payload: Buffer, what: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < payload.length; i++) {
    if (payload[i] === 0) {
      out.push(payload.toString('latin1', start, i));
      start = i + 1;
    }
  }
  if (start !== payload.length) throw new FrameError(`${what}: string not NUL-terminated`);
  return out;
}

function exactStrings(payload: Buffer, n: number, what: string): string[] {
  const parts = splitStrings(payload, what);
  if (parts.length !== n) throw new FrameError(`${what}: expected ${n} strings, got ${parts.length}`);
  return parts;
}

function noPayload<T extends MilterCommand>(value: T, what: string) {
  return (payload: Buffer): T => {
    if (payload.length !== 0) throw new FrameError(`${what}: unexpected ${payload.length} payload bytes`);
    return value;
  };
}

function decodeOptneg(p: Buffer): MilterCommand {
  if (p.length < OPTNEG_PAYLOAD_BYTES)
    throw new FrameError(`OPTNEG: payload ${p.length} < ${OPTNEG_PAYLOAD_BYTES} bytes`);
  return { type: 'optneg', version: p.readUInt32BE(0), actions: p.readUInt32BE(4), protocol: p.readUInt32BE(8) };
}

function decodeMacro(p: Buffer): MilterCommand {
  if (p.length < 1) throw new FrameError('MACRO: missing stage byte');
  const stage = String.fromCharCode(p[0]!);
  const parts = p.length > 1 ? splitStrings(p.subarray(1), 'MACRO') : [];
  if (parts.length % 2 !== 0) throw new FrameError('MACRO: odd number of strings');
  const macros: Array<[string, string]> = [];
  for (let i = 0; i < parts.length; i += 2) macros.push([parts[i]!, parts[i + 1]!]);
  return { type: 'macro', stage, macros };
}

function decodeConnect(p: Buffer): MilterCommand {
  const nul = p.indexOf(0);
  if (nul < 0 || nul + 1 >= p.length) throw new FrameError('CONNECT: truncated');
  const hostname = p.toString('latin1', 0, nul);
  const fam = p[nul + 1]!;
  if (fam === Family.UNKNOWN) return { type: 'connect', hostname, family: 'unknown', port: 0, address: '' };
  const family = fam === Family.INET ? 'inet' : fam === Family.INET6 ? 'inet6' : fam === Family.UNIX ? 'unix' : null;
  if (!family) throw new FrameError(`CONNECT: unknown family 0x${fam.toString(16)}`);
  if (p.length < nul + 4) throw new FrameError('CONNECT: missing port');
  const port = p.readUInt16BE(nul + 2);
  const rest = splitStrings(p.subarray(nul + 4), 'CONNECT');
  if (rest.length !== 1) throw new FrameError('CONNECT: missing address');
  return { type: 'connect', hostname, family, port, address: rest[0]! };
}

function decodeArgv(type: 'mail' | 'rcpt') {
  return (p: Buffer): MilterCommand => {
    const args = splitStrings(p, type.toUpperCase());
    if (args.length < 1) throw new FrameError(`${type.toUpperCase()}: no address`);
    return { type, args };
  };
}

/** Dispatch table: command byte -> payload decoder. */
const decoders: ReadonlyMap<number, (payload: Buffer) => MilterCommand> = new Map<number, (p: Buffer) => MilterCommand>(
  [
    [Cmd.OPTNEG, decodeOptneg],
    [Cmd.MACRO, decodeMacro],
    [Cmd.CONNECT, decodeConnect],
    [Cmd.HELO, (p) => ({ type: 'helo', name: exactStrings(p, 1, 'HELO')[0]! })],
    [Cmd.MAIL, decodeArgv('mail')],
    [Cmd.RCPT, decodeArgv('rcpt')],
    [Cmd.DATA, noPayload({ type: 'data' }, 'DATA')],
    [
      Cmd.HEADER,
      (p) => {
        const [name, value] = exactStrings(p, 2, 'HEADER');
        return { type: 'header', name: name!, value: value! };
      },
    ],
    [Cmd.EOH, noPayload({ type: 'eoh' }, 'EOH')],
    [Cmd.BODY, (p) => ({ type: 'body', chunk: p })],
    // libmilter accepts a last body chunk in the EOM packet; so do we.
    [Cmd.BODYEOB, (p) => ({ type: 'eom', chunk: p })],
    [Cmd.ABORT, noPayload({ type: 'abort' }, 'ABORT')],
    [Cmd.QUIT, noPayload({ type: 'quit' }, 'QUIT')],
    [Cmd.QUIT_NC, noPayload({ type: 'quitnc' }, 'QUIT_NC')],
    [
      Cmd.UNKNOWN,
      (p) => {
        // Postfix sends the verb only, Sendmail the whole line; tolerate a missing NUL.
        const end = p.indexOf(0);
        return { type: 'unknown', line: p.toString('latin1', 0, end < 0 ? p.length : end) };
      },
    ],
  ],
);

export function decodeCommand(frame: Frame): MilterCommand {
  const decoder = decoders.get(frame.command);
  if (!decoder) throw new FrameError(`unknown command 0x${frame.command.toString(16).padStart(2, '0')}`);
  return decoder(frame.payload);
}
