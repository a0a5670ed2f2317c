// The origin rule's data: MaxMind DB files (.mmdb) that map an IP address to a country and/or
// an autonomous system. GeoLite2 Country/ASN, DB-IP lite and IPinfo lite all ship this format;
// each names its fields differently, `readOrigin` takes what any of them has.
//
// A file is read whole into memory once (a country database is a few MiB) and parsed by
// mmdb-lib. Admins replace it with geoipupdate or a cron job, usually by writing a new file and
// renaming it over the old one: at most every `checkEvery` ms a lookup stats the file and, when
// its inode, size or modification time changed, reads and parses it again. A new file that does
// not parse is logged and the old data stays in use: an update must never leave the gateway
// without data.
import { readFileSync, statSync, type Stats } from 'node:fs';
import type { Reader, Response } from 'mmdb-lib';
import { loadOnFirstUse } from '../../primitives/first-use.js';

// Loaded on first use, not by the commands that only read the policy (start-up time).
const mmdb = loadOnFirstUse<typeof import('mmdb-lib')>(import.meta.url, 'mmdb-lib');

/** What the databases say about one address. */
export interface OriginFacts {
  /** ISO 3166-1 alpha-2, upper case. */
  country?: string;
  asn?: number;
  /** The AS organisation name, as the database spells it. */
  org?: string;
}

export interface DatabaseStatus {
  path: string;
  /** databaseType from the file's metadata, e.g. "GeoLite2-Country". */
  type: string | null;
  /** When the data was built (metadata build_epoch), epoch ms; null when not loaded. */
  builtAt: number | null;
  /** Last load or reload error, null when the loaded data is current. */
  error: string | null;
}

/**
 * Largest file read: the biggest lite databases (city level) are a few hundred MiB; a country or
 * ASN file is under 15 MiB. A wrong path to some huge file must not take the gateway's memory.
 */
export const MAX_DATABASE_BYTES = 512 * 1024 * 1024;

type Record_ = Record<string, unknown>;

const isObject = (v: unknown): v is Record_ => typeof v === 'object' && v !== null && !Array.isArray(v);
const COUNTRY_CODE = /^[A-Z]{2}$/;

/** "AS3320" (IPinfo) or 3320 (MaxMind, DB-IP). */
function asNumber(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  if (typeof v === 'string') {
    const m = /^(?:AS)?(\d{1,10})$/i.exec(v.trim());
    if (m) return Number(m[1]);
  }
  return undefined;
}

function countryCode(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  const c = v.trim().toUpperCase();
  return COUNTRY_CODE.test(c) ? c : undefined;
}

/**
 * The facts in one database record, whichever layout it has:
 *  MaxMind/DB-IP country: { country: { iso_code }, registered_country: { iso_code } }
 *  MaxMind/DB-IP ASN:     { autonomous_system_number, autonomous_system_organization }
 *  IPinfo lite:           { country_code, asn: "AS123", as_name }
 * The country is where the address is used (`country`), else where it is registered.
 */
export function readOrigin(record: unknown): OriginFacts {
  if (!isObject(record)) return {};
  const out: OriginFacts = {};
  const country =
    (isObject(record.country) ? countryCode(record.country.iso_code) : undefined) ??
    countryCode(record.country_code) ??
    (isObject(record.registered_country) ? countryCode(record.registered_country.iso_code) : undefined);
  if (country) out.country = country;
  const asn = asNumber(record.autonomous_system_number) ?? asNumber(record.asn);
  if (asn !== undefined) out.asn = asn;
  const org = record.autonomous_system_organization ?? record.as_name;
  if (typeof org === 'string' && org.trim() !== '') out.org = org.trim();
  return out;
}

interface Loaded {
  reader: Reader<Response>;
  /** Identity of the file that was read: a rename over it changes the inode. */
  ino: number;
  size: number;
  mtimeMs: number;
}

export interface MmdbEvents {
  /** A file was (re)loaded. */
  loaded?(path: string, status: DatabaseStatus, reloaded: boolean): void;
  /** A reload or a lookup failed (`error` says what happens now); said once per distinct error. */
  failed?(path: string, error: string): void;
}

/** One .mmdb file, reloaded when it changes. */
export class MmdbFile {
  private current: Loaded | null = null;
  private lastError: string | null = null;
  private lastCheck = 0;

  constructor(
    readonly path: string,
    private readonly checkEvery: number,
    private readonly events: MmdbEvents = {},
    private readonly now: () => number = Date.now,
    private readonly maxBytes: number = MAX_DATABASE_BYTES,
  ) {}

  /** Reads the file; throws with a clear message when it is missing or not a MaxMind DB. */
  load(): void {
    const st = statSync(this.path);
    this.current = this.parse(st);
    this.lastError = null;
    this.lastCheck = this.now();
    this.events.loaded?.(this.path, this.status(), false);
  }

  /** Like load(), but a failure is kept as the status instead of thrown (monitor mode). */
  tryLoad(): boolean {
    try {
      this.load();
      return true;
    } catch (err) {
      this.lastError = (err as Error).message;
      this.lastCheck = this.now();
      return false;
    }
  }

  get loaded(): boolean {
    return this.current !== null;
  }

  status(): DatabaseStatus {
    const meta = this.current?.reader.metadata;
    return {
      path: this.path,
      type: meta?.databaseType ?? null,
      builtAt: meta ? meta.buildEpoch.getTime() : null,
      error: this.lastError,
    };
  }

  /**
   * The record of `ip`, or null when the file has none (or is not loaded). A file whose data
   * section is damaged (the tree is only read at lookup) places nobody: reported once, and the
   * client is "unknown" rather than refused for our broken file.
   */
  lookup(ip: string): OriginFacts | null {
    this.maybeReload();
    if (!this.current) return null;
    try {
      const record = this.current.reader.get(ip);
      return record === null ? null : readOrigin(record);
    } catch (err) {
      this.fail(
        `lookup of ${ip} failed, the file is damaged (${(err as Error).message}); such addresses count as unknown`,
      );
      return null;
    }
  }

  /** Stats the file at most every `checkEvery` ms and reads it again when it changed. */
  maybeReload(): void {
    const now = this.now();
    if (now - this.lastCheck < this.checkEvery) return;
    this.lastCheck = now;
    let st: Stats;
    try {
      st = statSync(this.path);
    } catch (err) {
      // A file that is gone for a moment (between unlink and rename) keeps the old data.
      this.fail(
        `cannot stat it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); keeping the data loaded before`,
      );
      return;
    }
    const c = this.current;
    if (c && c.ino === st.ino && c.size === st.size && c.mtimeMs === st.mtimeMs) return;
    try {
      this.current = this.parse(st);
      this.lastError = null;
      this.events.loaded?.(this.path, this.status(), c !== null);
    } catch (err) {
      const m = (err as Error).message;
      this.fail(
        `cannot use the new version (${m.startsWith(`${this.path}: `) ? m.slice(this.path.length + 2) : m}); keeping the data loaded before`,
      );
    }
  }

  private fail(message: string): void {
    if (message === this.lastError) return; // said once, not at every check
    this.lastError = message;
    this.events.failed?.(this.path, message);
  }

  private parse(st: Stats): Loaded {
    if (!st.isFile()) throw new Error(`${this.path}: not a regular file`);
    if (st.size > this.maxBytes)
      throw new Error(`${this.path}: ${st.size} bytes, more than the ${this.maxBytes} a database may have`);
    const buf = readFileSync(this.path);
    let reader: Reader<Response>;
    try {
      reader = new (mmdb().Reader)<Response>(buf);
    } catch (err) {
      throw new Error(`${this.path}: not a MaxMind DB file (${(err as Error).message})`, { cause: err });
    }
    return { reader, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
  }
}

/** Several files (a country and an ASN database, say); each fact comes from the first that has it. */
export class OriginDatabases {
  constructor(readonly files: readonly MmdbFile[]) {}

  lookup(ip: string): OriginFacts {
    const out: OriginFacts = {};
    for (const f of this.files) {
      const facts = f.lookup(ip);
      if (!facts) continue;
      if (out.country === undefined && facts.country !== undefined) out.country = facts.country;
      if (out.asn === undefined && facts.asn !== undefined) {
        out.asn = facts.asn;
        if (facts.org !== undefined) out.org = facts.org;
      }
    }
    return out;
  }

  /** The age of the oldest loaded file's data, ms; null when none is loaded. */
  oldestAge(now: number): number | null {
    const built = this.files.map((f) => f.status().builtAt).filter((b): b is number => b !== null);
    return built.length ? now - Math.min(...built) : null;
  }
}
