// A scripted SMTP gateway (and a fake clamd and milter) for the audit's unit tests. It behaves
// like Postfix + relayguard in the ways the probes look at, each switchable to the weak variant,
// and records every transaction so tests can check what the audit actually sent.
import { createServer, type Server, type Socket } from 'node:net';

export interface FakeGatewayOptions {
  xclient: boolean;
  vrfy: string;
  /** Relay for anyone (Postfix open relay, relayguard not filtering). */
  openRelay: boolean;
  /** null: no size limit at all. */
  sizeLimit: number | null;
  spoofing: 'refuse' | 'accept';
  /** Verdicts at end of data. */
  virusInbound: string;
  virusOutbound: string;
  exe: string;
  starttls: boolean;
}

export const GOOD_GATEWAY: FakeGatewayOptions = {
  xclient: true,
  vrfy: '502 5.5.1 VRFY command is disabled',
  openRelay: false,
  sizeLimit: 1000,
  spoofing: 'refuse',
  virusInbound: '554 5.7.1 Virus found: Eicar-Signature (ref x-1)',
  virusOutbound: '250 2.0.0 Ok: queued as HELD1',
  exe: '550 5.7.1 Blocked attachment (ref x-2)',
  starttls: false,
};

export interface Transaction {
  client: string;
  from: string;
  rcpts: string[];
  data?: string;
  reply?: string;
}

const LOCAL_DOMAIN = 'example.test';
// 127.0.0.1 only: another loopback address (127.0.0.2) stands for an outside address of the
// auditing host (the audit's --bind).
const isInternal = (ip: string) =>
  ip === '127.0.0.1' || ip.startsWith('10.') || ip === '::1' || ip === '::ffff:127.0.0.1';

export class FakeGateway {
  readonly transactions: Transaction[] = [];
  readonly commands: string[] = [];
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor(readonly opts: FakeGatewayOptions) {
    this.server = createServer((s) => this.session(s));
  }

  async start(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return (this.server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private session(s: Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => undefined);
    let client = s.remoteAddress ?? '';
    let tx: Transaction | null = null;
    let data: string[] | null = null;
    let buf = '';
    const say = (line: string) => s.write(`${line}\r\n`);
    say('220 fake.test ESMTP');
    s.setEncoding('latin1');
    s.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        if (data) {
          if (line !== '.') {
            data.push(line.startsWith('..') ? line.slice(1) : line);
            continue;
          }
          tx!.data = data.join('\r\n');
          data = null;
          const reply = this.verdict(tx!);
          tx!.reply = reply;
          say(reply);
          continue;
        }
        this.commands.push(line);
        const verb = line.split(' ')[0]!.toUpperCase();
        const arg = line.slice(verb.length).trim();
        switch (verb) {
          case 'EHLO': {
            const ext = [
              `SIZE ${this.opts.sizeLimit ?? 0}`,
              ...(this.opts.xclient ? ['XCLIENT NAME ADDR PROTO HELO'] : []),
              ...(this.opts.starttls ? ['STARTTLS'] : []),
              'ENHANCEDSTATUSCODES',
            ];
            s.write(
              ['fake.test', ...ext].map((e, i, all) => `250${i === all.length - 1 ? ' ' : '-'}${e}\r\n`).join(''),
            );
            break;
          }
          case 'XCLIENT': {
            if (!this.opts.xclient) {
              say('550 5.7.0 not authorized');
              break;
            }
            const addr = /ADDR=(\S+)/.exec(arg)?.[1];
            if (addr) client = addr;
            say('220 fake.test ESMTP');
            break;
          }
          case 'VRFY':
            say(this.opts.vrfy);
            break;
          case 'EXPN':
            say('500 5.5.2 Error: command not recognized');
            break;
          case 'MAIL': {
            const from = /^FROM:<([^>]*)>/i.exec(arg)?.[1] ?? '';
            const size = Number(/SIZE=(\d+)/i.exec(arg)?.[1] ?? 0);
            if (this.opts.sizeLimit !== null && size > this.opts.sizeLimit)
              say('552 5.3.4 Message size exceeds fixed limit');
            else if (this.opts.spoofing === 'refuse' && !isInternal(client) && from.endsWith(`@${LOCAL_DOMAIN}`))
              say('550 5.7.1 Sender address rejected');
            else {
              tx = { client, from, rcpts: [] };
              this.transactions.push(tx);
              say('250 2.1.0 Ok');
            }
            break;
          }
          case 'RCPT': {
            const rcpt = /^TO:<([^>]*)>/i.exec(arg)?.[1] ?? '';
            if (!tx) say('503 5.5.1 Error: need MAIL command');
            else if (!rcpt.endsWith(`@${LOCAL_DOMAIN}`) && !isInternal(client) && !this.opts.openRelay)
              say(`554 5.7.1 <${rcpt}>: Relay access denied`);
            else {
              tx.rcpts.push(rcpt);
              say('250 2.1.5 Ok');
            }
            break;
          }
          case 'DATA':
            if (!tx || tx.rcpts.length === 0) say('554 5.5.1 Error: no valid recipients');
            else {
              data = [];
              say('354 End data with <CR><LF>.<CR><LF>');
            }
            break;
          case 'RSET':
            tx = null;
            say('250 2.0.0 Ok');
            break;
          case 'QUIT':
            say('221 2.0.0 Bye');
            s.end();
            break;
          default:
            say('502 5.5.2 Error: command not recognized');
        }
      }
    });
  }

  private verdict(tx: Transaction): string {
    const d = tx.data ?? '';
    if (d.includes('relayguard-audit-eicar.txt'))
      return isInternal(tx.client) ? this.opts.virusOutbound : this.opts.virusInbound;
    if (d.includes('relayguard-audit.exe')) return this.opts.exe;
    return '250 2.0.0 Ok: queued as PLAIN1';
  }
}

/** clamd answering PING and VERSION (with a database built at `dbDate`). */
export async function fakeClamd(dbDate: string | null): Promise<{ port: number; stop(): Promise<void> }> {
  const server = createServer((s) => {
    s.on('error', () => undefined);
    s.on('data', (c) => {
      const cmd = c.toString('latin1');
      if (cmd.startsWith('zPING')) s.end('PONG\0');
      else if (cmd.startsWith('zVERSION')) s.end(dbDate ? `ClamAV 1.4.6/27000/${dbDate}\0` : 'ClamAV 1.4.6\0');
      else s.end('UNKNOWN COMMAND\0');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** A milter that answers OPTNEG (version 6, some actions) and closes on QUIT. */
export async function fakeMilter(): Promise<{ port: number; stop(): Promise<void> }> {
  const server = createServer((s) => {
    s.on('error', () => undefined);
    s.once('data', () => {
      const reply = Buffer.alloc(4 + 1 + 12);
      reply.writeUInt32BE(13, 0);
      reply[4] = 0x4f; // 'O'
      reply.writeUInt32BE(6, 5);
      reply.writeUInt32BE(0x31, 9);
      reply.writeUInt32BE(0, 13);
      s.write(reply);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}
