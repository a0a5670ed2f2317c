// A tiny UDP DNS server for the blocklist tests: answers A and TXT questions from a table,
// NXDOMAIN for unknown names, SERVFAIL on request, or never answers at all ("silent").
import { createSocket, type Socket } from 'node:dgram';

export type FakeAnswer =
  | { a: string[]; ttl?: number; txt?: string[] }
  | { rcode: 'NXDOMAIN' | 'SERVFAIL' | 'REFUSED' }
  /** Swallow the question: the client sees a timeout. */
  | 'silent';

const TYPE_A = 1;
const TYPE_TXT = 16;
const CLASS_IN = 1;
const RCODES = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

export class FakeDns {
  /** Every question seen, "name TYPE" (TYPE = A / TXT / number). */
  readonly seen: string[] = [];
  silentByDefault = false;
  private readonly socket: Socket = createSocket('udp4');

  constructor(private readonly table: Record<string, FakeAnswer> = {}) {
    this.socket.on('message', (msg, rinfo) => {
      const reply = this.answer(msg);
      if (reply) this.socket.send(reply, rinfo.port, rinfo.address);
    });
  }

  set(name: string, answer: FakeAnswer): void {
    this.table[name.toLowerCase()] = answer;
  }

  /** A TXT record of any length (a DKIM key), split into strings of at most 255 bytes as DNS requires. */
  setTxt(name: string, value: string): void {
    this.set(name, { a: [], txt: value.match(/.{1,255}/g) ?? [''] });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.socket.bind(0, '127.0.0.1', resolve));
    return `127.0.0.1:${this.socket.address().port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private answer(msg: Buffer): Buffer | null {
    if (msg.length < 12) return null;
    let off = 12;
    const labels: string[] = [];
    while (off < msg.length && msg[off] !== 0) {
      const len = msg[off]!;
      labels.push(msg.subarray(off + 1, off + 1 + len).toString('latin1'));
      off += 1 + len;
    }
    const qEnd = off + 5; // zero byte, qtype, qclass
    const qtype = msg.readUInt16BE(off + 1);
    const name = labels.join('.').toLowerCase();
    this.seen.push(`${name} ${qtype === TYPE_A ? 'A' : qtype === TYPE_TXT ? 'TXT' : qtype}`);
    const entry = this.table[name] ?? (this.silentByDefault ? 'silent' : { rcode: 'NXDOMAIN' as const });
    if (entry === 'silent') return null;
    const question = msg.subarray(12, qEnd);
    const records: Buffer[] = [];
    let rcode: number = RCODES.NOERROR;
    if ('rcode' in entry) rcode = RCODES[entry.rcode];
    else if (qtype === TYPE_A)
      for (const a of entry.a) records.push(rr(TYPE_A, entry.ttl ?? 300, Buffer.from(a.split('.').map(Number))));
    else if (qtype === TYPE_TXT && entry.txt) records.push(rr(TYPE_TXT, entry.ttl ?? 300, txtData(entry.txt)));
    const header = Buffer.alloc(12);
    header.writeUInt16BE(msg.readUInt16BE(0), 0); // id
    header.writeUInt16BE(0x8000 | 0x0400 | (msg.readUInt16BE(2) & 0x0100) | 0x0080 | rcode, 2); // QR AA RD RA rcode
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(records.length, 6);
    return Buffer.concat([header, question, ...records]);
  }
}

function rr(type: number, ttl: number, data: Buffer): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(0xc00c, 0); // pointer to the question name
  b.writeUInt16BE(type, 2);
  b.writeUInt16BE(CLASS_IN, 4);
  b.writeUInt32BE(ttl, 6);
  b.writeUInt16BE(data.length, 10);
  return Buffer.concat([b, data]);
}

function txtData(strings: string[]): Buffer {
  return Buffer.concat(strings.map((s) => Buffer.concat([Buffer.from([Buffer.byteLength(s)]), Buffer.from(s)])));
}

/** A UDP socket that reads every question and never answers. */
export async function blackHole(): Promise<{ server: string; stop(): Promise<void>; received(): number }> {
  const socket = createSocket('udp4');
  let count = 0;
  socket.on('message', () => count++);
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    server: `127.0.0.1:${socket.address().port}`,
    received: () => count,
    stop: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
