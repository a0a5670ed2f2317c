#!/usr/bin/env bash
# What `npm test` runs: compile (the type check), the lint rules and the format check
# (test/lint.sh), then the unit tests, then the end-to-end tests against the real stack (Postfix,
# smtp-sink, clamd, rbldnsd, redis; test/e2e/stack.sh installs missing Debian packages on a fresh
# machine, so run as root). The stack is stopped again at the end.
#
#   test/run-all.sh [all|unit|e2e] [NAME...]
#
# NAMEs (e.g. "relay miltertest") limit the run to test files whose name contains one of them.
#
#   RG_E2E_SLOT=N          run the stack on slot N's ports (see test/e2e/stack.sh)
#   RG_E2E_KEEP_STACK=1    leave the stack running afterwards
set -Eeuo pipefail
cd "$(dirname "$0")/.."

# A hang guard per file, not a speed target. The slowest unit file (quarantine-cli) starts the
# CLI about 40 times, 0.7 s each: 28 s alone, and it once passed 60 s on a loaded 2-core machine.
readonly UNIT_TEST_TIMEOUT_MS=120000
readonly E2E_TEST_TIMEOUT_MS=180000

what=${1:-all}
case $what in
  all | unit | e2e) ;;
  *) echo "usage: $0 [all|unit|e2e] [NAME...]" >&2; exit 2 ;;
esac
shift $(($# > 0 ? 1 : 0))
names=("$@")

started=$(date +%s)
[[ -d node_modules ]] || npm ci
# The build is the type check (tsc checks src, test and bench before it writes dist/; the same as
# `npm run typecheck`, which writes nothing).
echo "== typecheck and build (tsc -p .)"
npx tsc -p . || { echo "run-all: typecheck FAILED (the tsc errors are above); no test ran" >&2; exit 1; }
# The CLI's start-up snapshot for this Node (tools/cli-snapshot.ts): bin/relayguard and its tests
# use it, and tsc has just made any earlier one stale.
echo "== CLI start-up snapshot"
node dist/tools/cli-snapshot.js || { echo "run-all: the CLI start-up snapshot could not be built; no test ran" >&2; exit 1; }

failed=0
# The lint rules and the format check (test/lint.sh, `npm run lint`) once per full run, before the
# suites; a failure is reported at the end but the suites still run. `unit` and `e2e` runs (also
# CI's other Node lines) skip them: same code, same verdict.
lint=passed
if [[ $what == all ]]; then
  bash test/lint.sh || { failed=1; lint=FAILED; }
fi

# The compiled test files that belong to a source file (a stale file in dist/ is never run).
compiled_tests() {
  local src name wanted
  for src in test/"$1"/*.test.ts; do
    [[ -e $src ]] || continue
    wanted=$((${#names[@]} == 0))
    for name in "${names[@]}"; do [[ $(basename "$src") == *"$name"* ]] && wanted=1; done
    ((wanted)) || continue
    if [[ -e dist/${src%.ts}.js ]]; then echo "dist/${src%.ts}.js"; else echo "run-all: $src was not compiled; skipped" >&2; fi
  done
  return 0
}

# Some unit tests run real daemons too (redis-server for the shared offender ledger): on a fresh
# machine, as root, install the Debian packages before them.
if [[ $what == all || $what == unit ]] && (($(id -u) == 0)); then bash test/e2e/stack.sh packages; fi
if [[ $what == all || $what == unit ]]; then
  mapfile -t unit < <(compiled_tests unit)
  if ((${#unit[@]} > 0)); then
    echo "== unit tests (${#unit[@]} files)"
    node --test --test-reporter=spec --test-concurrency=2 --test-timeout="$UNIT_TEST_TIMEOUT_MS" "${unit[@]}" || failed=1
  fi
fi

if [[ $what == all || $what == e2e ]]; then
  mapfile -t e2e < <(compiled_tests e2e)
  if ((${#e2e[@]} > 0)); then
    (($(id -u) == 0)) || { echo "run-all: the e2e tests need root (they run their own Postfix, clamd, rbldnsd)" >&2; exit 1; }
    # The Sendmail tests start their own stack (test/e2e/sendmail-stack.sh) when they need it.
    if [[ ${RG_E2E_KEEP_STACK:-0} != 1 ]]; then
      trap 'bash test/e2e/sendmail-stack.sh down >/dev/null 2>&1 || true; bash test/e2e/stack.sh down >/dev/null || true' EXIT
    fi
    bash test/e2e/stack.sh up
    echo "== e2e tests (${#e2e[@]} files, one at a time, through the real Postfix)"
    # One file at a time: every e2e file uses the same Postfix instance and milter port.
    node --test --test-reporter=spec --test-concurrency=1 --test-timeout="$E2E_TEST_TIMEOUT_MS" "${e2e[@]}" || failed=1
  fi
fi

[[ $what == all ]] && echo "== run-all: lint $lint (test/lint.sh)"
echo "== run-all: $what $( ((failed)) && echo FAILED || echo passed) in $(($(date +%s) - started)) s"
exit "$failed"
