#!/bin/sh
# Runs a command under heaptrack's preload, exec'd so that signals sent to it reach the command
# (the bench stops its operator with SIGTERM and reads its peak RSS by pid). For
# PW_OPERATOR_WRAPPER (docs/performance.md); the profile goes to $HEAPTRACK_DIR (/tmp) as
# heaptrack.<pid>.gz, read with heaptrack_print. Debian: apt-get install heaptrack.
set -eu
lib=/usr/lib/heaptrack
[ -x "$lib/libexec/heaptrack_interpret" ] || { echo "heaptrack is not installed (apt-get install heaptrack)" >&2; exit 1; }
out="${HEAPTRACK_DIR:-/tmp}/heaptrack.$$"
mkfifo "$out.fifo"
"$lib/libexec/heaptrack_interpret" < "$out.fifo" | gzip -c > "$out.gz" &
exec env LD_PRELOAD="$lib/libheaptrack_preload.so" DUMP_HEAPTRACK_OUTPUT="$out.fifo" "$@"
