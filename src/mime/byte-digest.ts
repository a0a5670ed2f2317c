// What the disclaimer's checks compare to prove that untouched stretches of a message (a part's
// header block or body, the bytes between parts) came out byte-identical: the bytes themselves
// while the message is small, a SHA-256 once it is not. For a message in memory the bytes are
// views of buffers that exist anyway, so keeping them costs nothing, and comparing them is a
// memcmp where hashing them was most of the cost of the checks for a 100 KB attachment (twice:
// once per pass). Past the budget every stretch is hashed, as before, so a 50 MB message keeps
// flat memory. A kept stretch compared with a hashed one is hashed on the spot: the comparison
// is exact either way (bytes against bytes, or SHA-256 against SHA-256).
import { createHash, type Hash } from 'node:crypto';

const ALGORITHM = 'sha256';

/** The bytes of one stretch, kept or hashed. */
export class ByteDigest {
  private pieces: Buffer[] | null = [];
  private hash: Hash | null = null;
  private hex: string | null = null;
  length = 0;

  // A true private field: JSON.stringify of a tree must not walk into the budget's list.
  readonly #budget: KeepBudget;

  constructor(budget: KeepBudget) {
    this.#budget = budget;
    budget.track(this);
  }

  update(bytes: Buffer): void {
    this.length += bytes.length;
    if (this.pieces) {
      this.pieces.push(bytes);
      this.#budget.spend(bytes.length);
    } else this.hash!.update(bytes);
  }

  /** Stop keeping: hash what was kept, hash what follows. */
  toHash(): void {
    if (!this.pieces) return;
    this.hash = createHash(ALGORITHM);
    for (const p of this.pieces) this.hash.update(p);
    this.pieces = null;
  }

  /** The same bytes as `other`. */
  sameAs(other: ByteDigest): boolean {
    if (this.length !== other.length) return false;
    if (this.pieces && other.pieces) return samePieces(this.pieces, other.pieces);
    return this.digest() === other.digest();
  }

  /** For logs and tests: the length and SHA-256, without changing what is kept. */
  toJSON(): { length: number; sha256: string } {
    if (!this.pieces) return { length: this.length, sha256: this.digest() };
    const h = createHash(ALGORITHM);
    for (const p of this.pieces) h.update(p);
    return { length: this.length, sha256: h.digest('hex') };
  }

  private digest(): string {
    if (this.hex === null) {
      this.toHash();
      this.hex = this.hash!.digest('hex');
    }
    return this.hex;
  }
}

/** How many bytes the digests of one tree may keep before all of them switch to hashing. */
export class KeepBudget {
  private readonly digests: ByteDigest[] = [];
  private kept = 0;
  private hashing = false;

  constructor(private readonly limit: number) {}

  track(d: ByteDigest): void {
    if (this.hashing) d.toHash();
    else this.digests.push(d);
  }

  spend(bytes: number): void {
    this.kept += bytes;
    if (this.kept <= this.limit) return;
    this.hashing = true;
    for (const d of this.digests) d.toHash();
    this.digests.length = 0;
  }
}

/** Two lists of pieces of the same total length hold the same bytes (compared in place, no copy). */
function samePieces(a: readonly Buffer[], b: readonly Buffer[]): boolean {
  let i = 0;
  let j = 0;
  let x = 0; // offset in a[i]
  let y = 0; // offset in b[j]
  while (i < a.length && j < b.length) {
    const p = a[i]!;
    const q = b[j]!;
    const n = Math.min(p.length - x, q.length - y);
    if (n > 0 && Buffer.compare(p.subarray(x, x + n), q.subarray(y, y + n)) !== 0) return false;
    x += n;
    y += n;
    if (x === p.length) (i++, (x = 0));
    if (y === q.length) (j++, (y = 0));
  }
  return true;
}
