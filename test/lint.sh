#!/usr/bin/env bash
# What `npm run lint` runs, as two steps with a line each, so a failure says which one:
#   1. the lint rules (eslint.config.js; typescript-eslint with type information);
#   2. the format check (Prettier, .prettierrc.json): `npm run format` rewrites the files.
# Both steps always run; the exit code is non-zero when either failed.
#
#   test/lint.sh [rules|format]     one step only
set -uo pipefail
cd "$(dirname "$0")/.."

# The TypeScript that Prettier formats (the same files the lint rules and tsc cover).
readonly FORMATTED=('src/**/*.ts' 'test/**/*.ts' 'bench/**/*.ts' 'tools/**/*.ts' 'eslint.config.js')

what=${1:-all}
case $what in all | rules | format) ;; *) echo "usage: $0 [all|rules|format]" >&2; exit 2 ;; esac

failed=0
if [[ $what == all || $what == rules ]]; then
  started=$SECONDS
  if npx --no-install eslint --max-warnings=0 src test bench tools; then
    echo "== lint rules: passed in $((SECONDS - started)) s"
  else
    echo "== lint rules: FAILED in $((SECONDS - started)) s (the findings are above; eslint.config.js says why each rule is on)" >&2
    failed=1
  fi
fi
if [[ $what == all || $what == format ]]; then
  if npx --no-install prettier --check --log-level=warn "${FORMATTED[@]}"; then
    echo "== format check: passed"
  else
    echo "== format check: FAILED: the files above differ from Prettier's format (run: npm run format)" >&2
    failed=1
  fi
fi
exit "$failed"
