#!/usr/bin/env bash
# relayguard's benchmark (see bench/README.md). Run as root on a Debian machine:
#
#   bench/run.sh                                   # the full benchmark (about an hour on 2 cores)
#   bench/run.sh --messages 200 --repeats 1        # a quick look
#   bench/run.sh --kinds c-null,rg-trace --transports unix
#
# It builds relayguard (tsc) and the C reference milter, installs MIMEDefang and clamav-milter
# if they are missing (no system service is started), and leaves nothing running.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
(($(id -u) == 0)) || { echo "bench/run.sh: must run as root (it runs its own Postfix instance)" >&2; exit 2; }

need=()
# MIMEDefang 3.3 needs Net::DNS but does not depend on it; HTML::Parser is for HTML boilerplate.
for pkg in postfix libmilter-dev gcc clamav-daemon mimedefang libnet-dns-perl libhtml-parser-perl clamav-milter; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "bench: installing ${need[*]}" >&2
  exec 8>/tmp/rg-e2e-apt.lock; flock -w 600 8
  made=
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/tmp/rg-bench-apt.log 2>&1 \
    || { apt-get update -q >>/tmp/rg-bench-apt.log 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >>/tmp/rg-bench-apt.log 2>&1; } \
    || { [[ -n $made ]] && rm -f /usr/sbin/policy-rc.d; echo "bench: apt-get failed, see /tmp/rg-bench-apt.log" >&2; exit 1; }
  [[ -n $made ]] && rm -f /usr/sbin/policy-rc.d
  exec 8>&-
fi

cd "$repo"
[[ -d node_modules ]] || npm ci --no-audit --no-fund
npx tsc -p .
# serve's bundle and the CLI's snapshot, as npm run build makes them: tsc rewrote dist/src, and
# bin/relayguard (which starts the measured serve) does not use a bundle older than dist/src.
node dist/tools/cli-snapshot.js
export RG_E2E_SLOT=${RG_E2E_SLOT:-7}
exec node dist/bench/run.js "$@"
