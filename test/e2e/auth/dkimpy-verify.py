#!/usr/bin/python3
# The independent verifier of the authentication e2e tests: dkimpy (Debian's python3-dkim, the
# library behind dkimverify and arcverify) checks every DKIM signature and the ARC chain of the
# message on stdin. Its DNS questions go to the test's nsd (argv[1] = "host:port") instead of
# the system resolver. Prints JSON: {"dkim": [{"d": ..., "s": ..., "ok": bool}], "arc": cv}.
import json
import re
import sys

import dkim
import dns.message
import dns.query
import dns.rdatatype

host, port = sys.argv[1].rsplit(':', 1)


def txt(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode('ascii')
    q = dns.message.make_query(name, dns.rdatatype.TXT)
    r = dns.query.udp(q, host, port=int(port), timeout=timeout)
    for rrset in r.answer:
        for rdata in rrset:
            if rdata.rdtype == dns.rdatatype.TXT:
                return b''.join(rdata.strings)
    return None


# smtp-sink writes LF line ends; DKIM is computed over CRLF.
message = re.sub(rb'\r?\n', b'\r\n', sys.stdin.buffer.read())
d = dkim.DKIM(message, minkey=1024)
out = []
for i, (name, value) in enumerate(h for h in d.headers if h[0].lower() == b'dkim-signature'):
    tags = dict(
        (k.strip().decode(), v.strip().decode())
        for k, _, v in (t.partition(b'=') for t in re.sub(rb'\s+', b'', value).split(b';') if b'=' in t)
    )
    try:
        ok = dkim.DKIM(message, minkey=1024).verify(idx=i, dnsfunc=txt)
    except Exception as e:  # a verifier error is a failed signature, with the reason
        ok = False
        tags['error'] = str(e)
    out.append({'d': tags.get('d'), 's': tags.get('s'), 'a': tags.get('a'), 'ok': bool(ok), **({'error': tags['error']} if 'error' in tags else {})})
cv, results, comment = dkim.arc_verify(message, dnsfunc=txt)
print(json.dumps({'dkim': out, 'arc': cv.decode() if isinstance(cv, bytes) else cv, 'arc_comment': comment}))
