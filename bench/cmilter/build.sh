#!/usr/bin/env bash
# Builds the benchmark's C reference milter (needs gcc and libmilter-dev) into $1 (default: the
# directory of this script). Prints the path of the binary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}/bench-milter
if [[ ! -x $out || $here/bench-milter.c -nt $out ]]; then
  gcc -O2 -Wall -Wextra -Werror -pthread -o "$out" "$here/bench-milter.c" -lmilter
fi
echo "$out"
