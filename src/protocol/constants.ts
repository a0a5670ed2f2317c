// Milter protocol v6 constants, as libmilter's mfdef.h names them and as Postfix 3.7 and
// Sendmail 8.14+ put them on the wire. Every number the codec uses lives here.

/** Highest protocol version we speak. */
export const MILTER_VERSION = 6;
/** Lowest MTA version we accept; below this the option negotiation differs too much. */
export const MILTER_MIN_VERSION = 2;

/** A frame is a 4-byte big-endian length followed by `length` bytes (command + payload). */
export const FRAME_HEADER_BYTES = 4;
/** Smallest legal length: the command byte alone. */
export const MIN_FRAME_LENGTH = 1;
/** Default cap on incoming frames. Postfix sends header packets as large as a header (up to
 *  header_size_limit, 102400 by default), so 64 KiB is too small; 1 MiB is generous. */
export const DEFAULT_MAX_FRAME_LENGTH = 1024 * 1024;
/** Body chunks sent back with SMFIR_REPLBODY: libmilter's MILTER_CHUNK_SIZE; Sendmail refuses more. */
export const MAX_BODY_CHUNK = 65535;
/** OPTNEG payload from the MTA: version, actions, protocol (3 x u32). */
export const OPTNEG_PAYLOAD_BYTES = 12;

/** MTA -> milter commands (SMFIC_*). */
export const Cmd = {
  ABORT: 0x41, // 'A'
  BODY: 0x42, // 'B'
  CONNECT: 0x43, // 'C'
  MACRO: 0x44, // 'D'
  BODYEOB: 0x45, // 'E'
  HELO: 0x48, // 'H'
  QUIT_NC: 0x4b, // 'K'
  HEADER: 0x4c, // 'L'
  MAIL: 0x4d, // 'M'
  EOH: 0x4e, // 'N'
  OPTNEG: 0x4f, // 'O'
  QUIT: 0x51, // 'Q'
  RCPT: 0x52, // 'R'
  DATA: 0x54, // 'T'
  UNKNOWN: 0x55, // 'U'
} as const;
/** milter -> MTA replies and actions (SMFIR_*). */
export const Reply = {
  ADDRCPT: 0x2b, // '+'
  DELRCPT: 0x2d, // '-'
  ADDRCPT_PAR: 0x32, // '2'
  SHUTDOWN: 0x34, // '4' (MTA-internal: never sent by us)
  ACCEPT: 0x61, // 'a'
  REPLBODY: 0x62, // 'b'
  CONTINUE: 0x63, // 'c'
  DISCARD: 0x64, // 'd'
  CHGFROM: 0x65, // 'e'
  CONN_FAIL: 0x66, // 'f' (MTA-internal: never sent by us)
  ADDHEADER: 0x68, // 'h'
  INSHEADER: 0x69, // 'i'
  SETSYMLIST: 0x6c, // 'l' (MTA-internal)
  CHGHEADER: 0x6d, // 'm'
  OPTNEG: 0x4f, // 'O'
  PROGRESS: 0x70, // 'p'
  QUARANTINE: 0x71, // 'q'
  REJECT: 0x72, // 'r'
  SKIP: 0x73, // 's'
  TEMPFAIL: 0x74, // 't'
  REPLYCODE: 0x79, // 'y'
} as const;
/** Action flags (SMFIF_*): what the milter may change at end of message. */
export const Action = {
  ADDHDRS: 0x001,
  CHGBODY: 0x002,
  ADDRCPT: 0x004,
  DELRCPT: 0x008,
  CHGHDRS: 0x010,
  QUARANTINE: 0x020,
  CHGFROM: 0x040,
  ADDRCPT_PAR: 0x080,
  SETSYMLIST: 0x100,
} as const;
export const ALL_ACTIONS = 0x1ff;

/** Protocol flags (SMFIP_*). Two kinds share this word: "don't send" and "no reply" bits. */
export const Proto = {
  NOCONNECT: 0x000001,
  NOHELO: 0x000002,
  NOMAIL: 0x000004,
  NORCPT: 0x000008,
  NOBODY: 0x000010,
  NOHDRS: 0x000020,
  NOEOH: 0x000040,
  NR_HDR: 0x000080,
  NOUNKNOWN: 0x000100,
  NODATA: 0x000200,
  SKIP: 0x000400,
  RCPT_REJ: 0x000800,
  NR_CONN: 0x001000,
  NR_HELO: 0x002000,
  NR_MAIL: 0x004000,
  NR_RCPT: 0x008000,
  NR_DATA: 0x010000,
  NR_UNKN: 0x020000,
  NR_EOH: 0x040000,
  NR_BODY: 0x080000,
  HDR_LEADSPC: 0x100000,
  MDS_256K: 0x10000000,
  MDS_1M: 0x20000000,
} as const;
export const ALL_PROTOCOL_V6 = 0x1fffff;

/** Macro stage numbers used in the SETSYMLIST part of our OPTNEG reply. Note EOM < EOH. */
export const MacroStage = {
  CONNECT: 0,
  HELO: 1,
  MAIL: 2,
  RCPT: 3,
  DATA: 4,
  EOM: 5,
  EOH: 6,
} as const;
export type MacroStageNumber = (typeof MacroStage)[keyof typeof MacroStage];

/** Address families in the CONNECT payload. */
export const Family = {
  UNKNOWN: 0x55, // 'U'
  UNIX: 0x4c, // 'L'
  INET: 0x34, // '4'
  INET6: 0x36, // '6'
} as const;
