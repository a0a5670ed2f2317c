#!/usr/bin/env bash
# Builds the real-world mail corpus from Debian 12 packages: test mail that other projects ship
# (CPython's and PyPy's email tests, enmime, flufl.bounce, Mailman, HyperKitty, dkimpy,
# SpamAssassin, ClamAV), one message per file, with a manifest. See test/corpus/SOURCES.md.
#
#   test/corpus/collect.sh [DIR]        (default /tmp/rg-corpus, or $RG_CORPUS_DIR)
#
# Writes DIR/msgs/<source>/<name>.eml and DIR/manifest.tsv (file, sha256, package, version,
# path inside the package, message index in an mbox). The .deb files are downloaded with apt and
# unpacked into DIR/.pkgroot (removed afterwards) with dpkg-deb -x: no dependencies, no maintainer scripts, no
# services (mailman3 and hyperkitty would otherwise pull in Django and start daemons). The
# independent parsers the differential tests compare with are really installed:
# libmime-tools-perl (MIME::Parser) and python3 (the email package).
# A second run with the same package versions is a no-op (DIR/.stamp). Run as root on Debian 12.
set -Eeuo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-${RG_CORPUS_DIR:-/tmp/rg-corpus}}

# Packages whose files are unpacked (not installed), and the tools that are installed.
readonly UNPACKED=(
  libpython3.11-testsuite pypy3-lib-testsuite golang-github-jhillyerd-enmime-dev
  python3-flufl.bounce mailman3 python3-django-hyperkitty python3-dkim spamassassin
  clamav-testfiles
)
readonly INSTALLED=(libmime-tools-perl python3)

say() { echo "collect: $*" >&2; }
fail() { say "$*"; exit 1; }

apt_lists_empty() { ! ls /var/lib/apt/lists/ 2>/dev/null | grep -q '_Packages'; }
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }

# The stamp: package versions plus the builder's own source, so an edit rebuilds the corpus.
stamp_text() {
  apt-cache policy "${UNPACKED[@]}" | awk '/^[^ ]/ {p=$1} /Candidate:/ {print p, $2}'
  sha256sum "$here/build_corpus.py" "$0" | awk '{print $1}'
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

ensure_tools() {
  local missing=() p
  for p in "${INSTALLED[@]}"; do installed "$p" || missing+=("$p"); done
  ((${#missing[@]} == 0)) && return 0
  (($(id -u) == 0)) || fail "missing ${missing[*]}; run as root to install them"
  # Same lock as test/e2e/stack.sh: one apt run at a time across all test slots.
  exec 8>/tmp/rg-e2e-apt.lock; flock -w 600 8 || fail "another apt run holds /tmp/rg-e2e-apt.lock"
  export DEBIAN_FRONTEND=noninteractive
  apt_lists_empty && apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
    || { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; } \
    || fail "apt-get install ${missing[*]} failed"
  exec 8>&-
}

ensure_tools
if apt_lists_empty; then
  (($(id -u) == 0)) || fail "the apt lists are empty; run as root (apt-get update)"
  apt-get update -q >&2
fi
want=$(stamp_text)
# Test files run side by side and each calls this script: one builds, the others wait.
mkdir -p "$out"
exec 9>"$out/.lock"; flock -w 600 9 || fail "another collect.sh holds $out/.lock"
if [[ -f $out/.stamp && -f $out/manifest.tsv ]] && [[ $(cat "$out/.stamp") == "$want" ]]; then
  say "up to date: $out ($(($(wc -l <"$out/manifest.tsv") - 1)) messages)"
  exit 0
fi

mkdir -p "$out/.debs" "$out/.pkgroot"
cd "$out/.debs"
for p in "${UNPACKED[@]}"; do
  v=$(candidate "$p"); [[ -n $v && $v != "(none)" ]] || fail "no Debian package $p (apt-get update?)"
  f=$(ls "${p}_"*.deb 2>/dev/null | grep -F "_${v//:/%3a}_" | head -n1 || true)
  if [[ -z $f ]]; then
    rm -f "${p}_"*.deb
    apt-get download -q -o APT::Sandbox::User=root "$p=$v" >&2 || fail "apt-get download $p=$v failed"
    f=$(ls "${p}_"*.deb | head -n1)
  fi
  rm -rf "$out/.pkgroot/$p"; mkdir -p "$out/.pkgroot/$p"
  dpkg-deb -x "$f" "$out/.pkgroot/$p"
  echo "$p $v" >"$out/.pkgroot/$p/.version"
done
cd - >/dev/null
/usr/bin/python3 "$here/build_corpus.py" "$out"
# The unpacked trees (90 MB, mostly PyPy's test suite) are not needed any more; the .deb files
# stay, so that a rebuild after an edit of the builder needs no download.
rm -rf "$out/.pkgroot"
echo "$want" >"$out/.stamp"
say "wrote $out ($(($(wc -l <"$out/manifest.tsv") - 1)) messages)"
