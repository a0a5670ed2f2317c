#!/usr/bin/python3
"""Lists the MIME tree of each message as Python's email package sees it (one JSON line per file).

    dump_python.py [--policy compat32|default] FILE...      (or "-": file names on stdin)

The format is the common MIME dump of test/support/mime-compare.ts: every node depth-first, in
pre-order, containers with depth and type, leaves also with the size and SHA-256 of the
transfer-decoded body (and sha256_text, see text_reading) and the decoded file name. A message/rfc822 part is a node whose one child
is the embedded message's root. compat32 (the default) is what the mailbox module and most
Python mail tools use; "default" is the modern policy, kept to see where the two differ.
"""
import email
import email.policy
import hashlib
import json
import re
import sys
from email.header import decode_header, make_header


def decoded_filename(part):
    try:
        name = part.get_filename()
    except Exception:  # a malformed RFC 2231 parameter: the client shows no name
        return None
    if name is None:
        return None
    name = str(name)
    if "\ufffd" in name:
        # Raw 8-bit bytes in the parameter: compat32 replaces them; policy.default reads them as
        # UTF-8, as clients do. The only difference the two policies show on the corpus.
        try:
            head = email.message_from_bytes(part.as_bytes(), policy=email.policy.default)
            name = str(head.get_filename() or name)
        except Exception:
            pass
    if "=?" in name:  # compat32 leaves RFC 2047 words encoded; clients decode them
        try:
            name = str(make_header(decode_header(name)))
        except Exception:
            pass
    return name


def text_reading(body):
    """The body with CRLF as LF and blanks at line ends removed: what a reader sees of a text.

    Decoders differ there (MIME::Tools turns CRLF into LF and strips trailing blanks in
    quoted-printable), so the comparator tells such a difference from a real one by this hash.
    """
    return re.sub(rb"[ \t]+(?=\n|$)", b"", body.replace(b"\r\n", b"\n"))


def children(part):
    """The parsed sub-parts of a container, or None for a leaf."""
    if not part.is_multipart():
        return None
    if part.get_content_maintype() == "message" and part.get_content_type() != "message/rfc822":
        return None  # see walk: message/delivery-status and the like are leaves for clients
    payload = part.get_payload()
    return payload if isinstance(payload, list) else None


def walk(part, depth, nodes):
    kids = children(part)
    node = {"depth": depth, "type": part.get_content_type()}
    nodes.append(node)
    if kids is not None:
        for kid in kids:
            walk(kid, depth + 1, nodes)
        return
    if part.is_multipart():
        # Python parses every message/* body (delivery-status, rfc822-headers,
        # disposition-notification) into header blocks; clients and MIME::Parser show it as one
        # text part. The raw bytes are gone after that parse, so the leaf carries no hash.
        node["opaque"] = "python parses this message/* body into header blocks"
        node["filename"] = decoded_filename(part)
        return
    body = part.get_payload(decode=True)
    if body is None:
        body = b""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogateescape")
    node["size"] = len(body)
    node["sha256"] = hashlib.sha256(body).hexdigest()
    node["sha256_text"] = hashlib.sha256(text_reading(body)).hexdigest()
    node["filename"] = decoded_filename(part)


def dump(path, policy):
    try:
        with open(path, "rb") as f:
            data = f.read()
        msg = email.message_from_bytes(data, policy=policy)
        nodes = []
        walk(msg, 0, nodes)
        return {"file": path, "parts": nodes}
    except Exception as e:  # the error is the result for this file; the batch goes on
        return {"file": path, "error": f"{type(e).__name__}: {e}"}


def main(argv):
    policy = email.policy.compat32
    if len(argv) >= 2 and argv[0] == "--policy":
        policy = {"compat32": email.policy.compat32, "default": email.policy.default}[argv[1]]
        argv = argv[2:]
    files = argv
    if files == ["-"]:
        files = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    out = sys.stdout
    for path in files:
        out.write(json.dumps(dump(path, policy)) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
