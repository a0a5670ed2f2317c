#!/usr/bin/python3
"""Writes the corpus from the unpacked Debian packages (called by collect.sh).

One message per file under OUT/msgs/<source>/, mboxes split into their messages, a leading
"From " envelope line removed (an MTA never passes it to a milter), byte-identical duplicates
kept once (PyPy ships most of CPython's test mail). OUT/manifest.tsv lists every message.
"""
import fnmatch
import hashlib
import mailbox
import os
import re
import shutil
import sys

out = sys.argv[1]
root = os.path.join(out, ".pkgroot")

# (source name, package, directory inside the package, file name patterns, files to leave out)
SOURCES = [
    ("cpython", "libpython3.11-testsuite", "usr/lib/python3.11/test/test_email/data", ["msg_*.txt"], []),
    ("pypy", "pypy3-lib-testsuite", "usr/lib/pypy3.9/test/test_email/data", ["msg_*.txt"], []),
    ("enmime", "golang-github-jhillyerd-enmime-dev", "usr/share/gocode/src/github.com/jhillyerd/enmime/testdata", ["*.raw"], []),
    ("flufl-bounce", "python3-flufl.bounce", "usr/lib/python3/dist-packages/flufl/bounce/tests/data", ["*.txt"], []),
    ("mailman", "mailman3", "usr/lib/python3/dist-packages/mailman", ["*.eml"], []),
    ("hyperkitty", "python3-django-hyperkitty", "usr/lib/python3/dist-packages/hyperkitty/tests/testdata", ["*.txt", "*.mbox"], []),
    ("dkimpy", "python3-dkim", "usr/lib/python3/dist-packages/dkim/tests/data", ["*.msg", "*.message", "*.mbox", "*.message.*"], []),
    ("spamassassin", "spamassassin", "usr/share/doc/spamassassin/examples", ["sample-*.txt"], []),
    ("clamav", "clamav-testfiles", "usr/share/clamav-testfiles", ["clam.mail", "clam.exe.mbox.*"], []),
]

# A message starts with a header field (or an mbox "From " line).
# enmime's bad-header-start.raw opens with a folded-looking first line; it is kept on purpose.
HEADER_START = re.compile(rb"^(From |[ \t]*[!-9;-~]+[ \t]*:)")


def messages_of(data):
    """The messages in one file: an mbox gives each message, anything else itself."""
    if not data.startswith(b"From "):
        return [data]
    # Split an mbox at "From " lines that follow a blank line (or start the file).
    chunks = re.split(rb"(?:^|(?<=\n\n)|(?<=\r\n\r\n))From [^\n]*\n", data)
    return [c for c in chunks if c.strip()]


def main():
    msgs_dir = os.path.join(out, "msgs")
    shutil.rmtree(msgs_dir, ignore_errors=True)
    os.makedirs(msgs_dir)
    seen = {}
    rows = []
    skipped = []
    for source, pkg, rel, patterns, leave_out in SOURCES:
        with open(os.path.join(root, pkg, ".version")) as f:
            version = f.read().split()[1]
        base = os.path.join(root, pkg, rel)
        if not os.path.isdir(base):
            sys.exit(f"build_corpus: {pkg} has no {rel}")
        found = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if any(fnmatch.fnmatch(name, p) for p in patterns) and name not in leave_out:
                    found.append(os.path.join(dirpath, name))
        if not found:
            sys.exit(f"build_corpus: no files matching {patterns} in {pkg}:{rel}")
        os.makedirs(os.path.join(msgs_dir, source), exist_ok=True)
        for path in sorted(found):
            with open(path, "rb") as f:
                data = f.read()
            inside = "/" + os.path.relpath(path, os.path.join(root, pkg))
            if not HEADER_START.match(data):
                skipped.append(f"{pkg}:{inside} (does not start with a header field)")
                continue
            parts = messages_of(data)
            stem = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.relpath(path, base))
            for i, msg in enumerate(parts):
                digest = hashlib.sha256(msg).hexdigest()
                if digest in seen:
                    continue
                name = f"{stem}.eml" if len(parts) == 1 else f"{stem}.{i + 1:03d}.eml"
                relname = f"{source}/{name}"
                seen[digest] = relname
                with open(os.path.join(msgs_dir, relname), "wb") as f:
                    f.write(msg)
                rows.append((relname, digest, pkg, version, inside, str(i + 1) if len(parts) > 1 else "-"))
    with open(os.path.join(out, "manifest.tsv"), "w") as f:
        f.write("file\tsha256\tpackage\tversion\tpath\tmbox_index\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    for s in skipped:
        print(f"build_corpus: skipped {s}", file=sys.stderr)


main()
