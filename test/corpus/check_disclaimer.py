#!/usr/bin/python3
"""Checks relayguard's disclaimer output against the message it came from, with Python's email
package as the independent parser (issue 15's property test; test/unit/corpus-disclaimer.test.ts).

    check_disclaimer.py < jobs.jsonl > results.jsonl

A job: {"id": ..., "baseline": FILE, "output": FILE, "second": FILE, "token": "RGCORPUSOUT"}:
the message as the MTA passes it on without the rule (CRLF line ends), after one pass of the rule,
after a second pass over that output; token is a word of the disclaimer that appears nowhere else.
A result: {"id": ..., "failures": [{"class": ..., "detail": ...}], "rewritten": N} where N is the
number of text leaves that got the disclaimer. The failure classes:

  parse-error                  Python cannot parse the output
  tree-changed                 the MIME tree (nesting, types, leaves) differs from the original
  attachment-changed           a leaf other than text/plain or text/html changed its decoded bytes
  filename-changed             a leaf's file name changed
  text-lost                    a rewritten text leaf no longer contains its original text intact
                               (format=flowed compared after unflowing both)
  text-prefixed                the original text is intact but something was put before it
  encoding-changed             a rewritten text leaf changed its Content-Transfer-Encoding (the
                               disclaimer is ASCII, so every encoding can take it as it is)
  charset-changed              a rewritten text leaf changed its charset (same reason)
  original-bytes-changed       the encoded body of a rewritten text/plain leaf does not start with
                               the original encoded body (the part was re-encoded, not appended to;
                               for base64 the last line may change)
  text-changed-no-disclaimer   a text leaf changed but has no disclaimer
  disclaimer-repeated          a text leaf has the disclaimer more than once
  plain-disclaimer-not-at-end  a text/plain leaf had text inserted before some of its original text
  second-pass-changed          a second pass over the output changed it again
  signed-changed               the body of signed or encrypted mail changed
  bare-lf-added                the output has more bare LF line ends than the original
  delimiter-not-on-own-line    a boundary delimiter no longer starts a line
"""
import email
import email.policy
import json
import re
import sys
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dump_python import children  # noqa: E402  (the same tree semantics as the dumper)

SIGNED_TYPES = {"multipart/signed", "multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime"}
TEXT_TYPES = {"text/plain", "text/html"}


def nodes(msg):
    """(depth, part, is_leaf) for every node, depth-first pre-order."""
    out = []

    def walk(part, depth):
        kids = children(part)
        out.append((depth, part, kids is None))
        for kid in kids or []:
            walk(kid, depth + 1)

    walk(msg, 0)
    return out


def leaf_bytes(part):
    if part.is_multipart():
        return None  # message/* parsed into header blocks: compared as a subtree instead
    body = part.get_payload(decode=True)
    return body if body is not None else b""


def text_of(part):
    """The decoded text, in the part's own charset, with CRLF as LF."""
    raw = leaf_bytes(part) or b""
    charset = part.get_content_charset() or "us-ascii"
    try:
        text = raw.decode(charset, "surrogateescape")
    except LookupError:
        text = raw.decode("latin-1")
    return text.replace("\r\n", "\n")


def unflow(text, delsp):
    """RFC 3676: a line ending in a space (but the "-- " signature separator) continues on the
    next line of the same quote depth; quote marks and space-stuffing come off before joining.
    Returns the logical lines, each with its quote depth as ">" marks."""
    out = []
    open_depth = None  # quote depth of the paragraph being joined, None when none is open
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing (or the blank after the quote marks)
        flowed = content.endswith(" ") and content != "-- "
        if flowed and delsp:
            content = content[:-1]
        if open_depth is not None and open_depth == depth:
            out[-1] += content
        else:
            out.append(">" * depth + (" " if depth else "") + content)
        open_depth = depth if flowed else None
    return "\n".join(out)


def is_flowed(part):
    return (part.get_param("format") or "").lower() == "flowed"


def delsp(part):
    return (part.get_param("delsp") or "").lower() == "yes"


def raw_body(part):
    """The body as it is on the wire (transfer-encoded), CRLF as LF."""
    payload = part.get_payload()
    if not isinstance(payload, str):
        return b""
    try:
        raw = payload.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:  # text the parser already decoded from an 8-bit header charset
        raw = payload.encode("utf-8", "surrogateescape")
    return raw.replace(b"\r\n", b"\n")


def raw_continues(old_part, new_part):
    """The new encoded body starts with the old one (its final line break aside; for base64
    without its last line, whose incomplete quantum may be re-encoded)."""
    old, new = raw_body(old_part), raw_body(new_part)
    old = old.rstrip(b"\n")
    if (old_part.get("content-transfer-encoding") or "").strip().lower() == "base64":
        old = old.rsplit(b"\n", 1)[0] if b"\n" in old else b""
    return new.startswith(old)


def bare_lf(data):
    return len(re.findall(rb"(?<!\r)\n", data))


def misplaced_delimiters(data):
    """Occurrences of "--boundary" (for every boundary declared) that do not start a line."""
    count = 0
    for b in set(re.findall(rb'boundary\s*=\s*"?([^";\r\n]+)"?', data, re.I)):
        for m in re.finditer(re.escape(b"--" + b.strip()), data):
            if m.start() > 0 and data[m.start() - 1:m.start()] != b"\n":
                count += 1
    return count


def body_of(data):
    sep = data.find(b"\r\n\r\n")
    return data[sep + 4:] if sep >= 0 else b""


def check(job):
    failures = []
    fail = lambda cls, detail: failures.append({"class": cls, "detail": detail})  # noqa: E731
    with open(job["baseline"], "rb") as f:
        base = f.read()
    with open(job["output"], "rb") as f:
        out = f.read()
    with open(job["second"], "rb") as f:
        second = f.read()
    token = job["token"]
    rewritten = 0

    if second != out:
        fail("second-pass-changed", f"{len(out)} -> {len(second)} bytes")
    if bare_lf(out) > bare_lf(base):
        fail("bare-lf-added", f"{bare_lf(base)} -> {bare_lf(out)} bare LF")
    if misplaced_delimiters(out) > misplaced_delimiters(base):
        fail("delimiter-not-on-own-line", f"{misplaced_delimiters(base)} -> {misplaced_delimiters(out)} delimiters not at a line start")

    a = email.message_from_bytes(base, policy=email.policy.compat32)
    try:
        b = email.message_from_bytes(out, policy=email.policy.compat32)
        nb = nodes(b)
    except Exception as e:
        fail("parse-error", f"{type(e).__name__}: {e}")
        return {"id": job["id"], "failures": failures, "rewritten": 0}
    na = nodes(a)

    if any(p.get_content_type() in SIGNED_TYPES for _d, p, _l in na) and body_of(out) != body_of(base):
        fail("signed-changed", "the body of signed or encrypted mail changed")

    shape = lambda ns: [(d, p.get_content_type(), leaf) for d, p, leaf in ns]  # noqa: E731
    if shape(na) != shape(nb):
        sa, sb = shape(na), shape(nb)
        fail("tree-changed", f"{len(sa)} nodes -> {len(sb)} nodes; first difference at node {next((i for i, (x, y) in enumerate(zip(sa, sb)) if x != y), min(len(sa), len(sb)))}")
        return {"id": job["id"], "failures": failures, "rewritten": 0}

    for i, ((_d, pa, leaf), (_d2, pb, _l2)) in enumerate(zip(na, nb)):
        if not leaf:
            continue
        ctype = pa.get_content_type()
        if (pa.get_filename() or None) != (pb.get_filename() or None):
            fail("filename-changed", f"node {i} {ctype}: {pa.get_filename()!r} -> {pb.get_filename()!r}")
        ba, bb = leaf_bytes(pa), leaf_bytes(pb)
        if ctype not in TEXT_TYPES:
            if ba != bb:
                fail("attachment-changed", f"node {i} {ctype}: {len(ba or b'')} -> {len(bb or b'')} decoded bytes")
            continue
        if ba == bb:
            continue
        old, new = text_of(pa), text_of(pb)
        if ctype == "text/plain" and (is_flowed(pa) or is_flowed(pb)):
            old, new = unflow(old, delsp(pa)), unflow(new, delsp(pb))
        n = new.count(token) - old.count(token)
        if n == 0:
            fail("text-changed-no-disclaimer", f"node {i} {ctype}: {len(old)} -> {len(new)} characters, no disclaimer")
            continue
        rewritten += 1
        if n > 1:
            fail("disclaimer-repeated", f"node {i} {ctype}: the disclaimer {n} times")
        # The original must survive as one prefix and one suffix around a single insertion.
        p = 0
        while p < min(len(old), len(new)) and old[p] == new[p]:
            p += 1
        s = 0
        while s < min(len(old), len(new)) - p and old[len(old) - 1 - s] == new[len(new) - 1 - s]:
            s += 1
        encoding = lambda part: (part.get("content-transfer-encoding") or "7bit").strip().lower()  # noqa: E731
        if encoding(pa) != encoding(pb):
            fail("encoding-changed", f"node {i} {ctype}: {encoding(pa)} -> {encoding(pb)}")
        if (pa.get_content_charset() or "us-ascii") != (pb.get_content_charset() or "us-ascii"):
            fail("charset-changed", f"node {i} {ctype}: {pa.get_content_charset()} -> {pb.get_content_charset()}")
        if ctype == "text/plain" and not raw_continues(pa, pb):
            fail("original-bytes-changed", f"node {i}: the encoded body ({encoding(pa)}) is not the original followed by more")
        if p + s < len(old.rstrip("\n")) and old.strip("\n") and old.strip("\n") in new:
            fail("text-prefixed", f"node {i} {ctype}: {new.index(old.strip(chr(10)))} characters before the original text: {new[:new.index(old.strip(chr(10)))][:40]!r}")
        elif p + s < len(old.rstrip("\n")):
            lost = old[p:len(old) - s]
            fail("text-lost", f"node {i} {ctype}: {len(lost)} of {len(old)} characters of the original changed, from {lost[:60]!r}")
        elif ctype == "text/plain" and old[len(old) - s:].strip():
            fail("plain-disclaimer-not-at-end", f"node {i}: the disclaimer is before {old[len(old) - s:][:60]!r}")
    return {"id": job["id"], "failures": failures, "rewritten": rewritten}


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        try:
            result = check(job)
        except Exception as e:  # a checker bug must not pass for a clean message
            result = {"id": job["id"], "failures": [{"class": "checker-error", "detail": f"{type(e).__name__}: {e}"}], "rewritten": 0}
        sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
