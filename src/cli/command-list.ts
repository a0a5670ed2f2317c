// The table of commands: what `relayguard --help` shows. Each command's file takes its texts from
// here (`...about(name)`); where its code is lives in commands.ts, which imports the command
// files, so this table imports none of them (no import cycle). A new command is one entry here,
// one in commands.ts and `...about(name)` in its own file.
import type { Command } from './command.js';

export type CommandText = Pick<Command, 'name' | 'usage' | 'summary'>;

export const COMMAND_TEXTS: readonly CommandText[] = [
  {
    name: 'serve',
    usage: 'serve [--config F] [--listen inet:HOST:PORT|unix:PATH] [--metrics HOST:PORT|off] [--pid-file F]',
    summary: 'Run the milter daemon (default policy: policies/default.yaml). SIGHUP reloads the policy.',
  },
  {
    name: 'validate',
    usage: 'validate [--config F] [--json]',
    summary:
      'Check a policy file; every error is printed as file:line:col: message (exit 1). --json: {ok, file, errors: [{line, col, path, message}]}.',
  },
  {
    name: 'check',
    usage:
      'check [--config F] --client-ip IP [--helo NAME] [--from ADDR] --rcpt ADDR [--rcpt ADDR]... [--auth USER] [--tls VERSION] [--out FILE] [--json] [--expect FILE] MESSAGE.eml',
    summary: 'Run the policy offline on a message; print each rule verdict and the final action.',
  },
  {
    name: 'milter-check',
    usage:
      'milter-check --milter inet:HOST:PORT|unix:PATH | --config F --client-ip IP [--helo NAME] [--from ADDR] --rcpt ADDR [--rcpt ADDR]... [--auth USER] [--tls VERSION] [--out FILE] [--json] MESSAGE.eml',
    summary:
      "Play the MTA against a milter (--milter, or the listen address of the policy's server) and print what it does with the message.",
  },
  {
    name: 'reload',
    usage: 'reload [--config F] [--pid-file F]',
    summary: 'Validate the policy, then tell the running daemon (pid file) to reload it.',
  },
  {
    name: 'quarantine',
    usage: 'quarantine list|show ID|release ID|delete ID [--config F] [--json]',
    summary:
      "Held messages (Postfix's hold queue, or Sendmail's quarantine with mta.kind: sendmail) with the reason relayguard held them; release delivers, delete removes.",
  },
  {
    name: 'offenders',
    usage: 'offenders [--config F] [--country CC]... [--by-country] [--json]',
    summary:
      'List client IPs with offences in the window and active bans (the offender ledger); --country keeps those placed in a country, --by-country counts per country.',
  },
  {
    name: 'unban',
    usage: 'unban IP [--config F]',
    summary: 'Lift the ban of a client IP and forget its offences.',
  },
  {
    name: 'postfix-config',
    usage: 'postfix-config [--config F] [--apply] [--postconf FILE|-] [--mta postfix|sendmail] [--access-map]',
    summary:
      "Print the postconf -e changes the policy needs against the live Postfix (postconf -n), each with the reason; --apply runs them (backup of main.cf, diff); --mta sendmail: the sendmail.mc lines; --access-map: Sendmail's access map.",
  },
  {
    name: 'lint-mta',
    usage: 'lint-mta [--config F] [--postconf FILE|-] [--json]',
    summary:
      'Check postconf -n output (runs postconf -c DIR -n without --postconf) against the policy; exit 1 on errors.',
  },
  {
    name: 'audit',
    usage:
      'audit --smtp HOST:PORT [--config F] [--rcpt ADDR] [--outside-ip IP] [--bind IP[,IP...]] [--helo NAME] [--json] [--junit FILE]',
    summary:
      'Probe a live gateway (VRFY, relay, spoofing, size, EICAR, attachments, TLS, DNSBL, clamd, milter); exit 0 when all pass.',
  },
  {
    name: 'init',
    usage: 'init [--out F] [--clamd-conf F]',
    summary:
      'Write a starting policy from the live Postfix (postconf -x; MAIL_CONFIG honoured), every rule in monitor mode.',
  },
  {
    name: 'keygen',
    usage: 'keygen --domain D --selector S --key FILE [--algorithm rsa-sha256|ed25519-sha256] [--bits N]',
    summary:
      'Create a signing key for arc_seal / DKIM (or read an existing one) and print the DNS TXT record to publish.',
  },
];

/** name, usage and summary of a command, for its own file. */
export function about(name: string): CommandText {
  const e = COMMAND_TEXTS.find((c) => c.name === name);
  if (!e) throw new Error(`no command ${name} in the table`);
  return { name: e.name, usage: e.usage, summary: e.summary };
}
