#!/usr/bin/env bash
# A large pasted-trace file for issue #15's import / chains / check figures: a real livelock excerpt
# from the corpus (tests/data/import/real, comment lines dropped) repeated until SIZE bytes, every
# timestamp shifted by one period per copy so that time keeps increasing (the excerpt's own span
# plus 1 us). The excerpt's damage (mail wraps, markers) is kept as pasted.
#
#   bench/import/make_pasted_trace.sh OUT [SIZE_MB] [FIXTURE]
#   default: 50 MB of kvm_list_2023_ept_loop_windows_flowed.txt (an EPT_VIOLATION / IRQ 0xd1
#   reinjection livelock, trace-cmd report text wrapped by a format=flowed mailer)
set -euo pipefail
out=$1
mb=${2:-50}
here=$(cd "$(dirname "$0")" && pwd)
fixture=${3:-$here/../../tests/data/import/real/kvm_list_2023_ept_loop_windows_flowed.txt}
# Timestamps are "SECONDS.MICROS:" after the "[cpu]" field; awk's doubles hold microseconds of
# these traces exactly (< 2^53), so they are shifted as integers.
awk -v limit=$((mb * 1000 * 1000)) '
  /^#/ { next }
  { line[++n] = $0 }
  END {
    lo = -1; hi = -1
    for (i = 1; i <= n; ++i)
      if (match(line[i], /[0-9]+\.[0-9][0-9][0-9][0-9][0-9][0-9]:/)) {
        ts = substr(line[i], RSTART, RLENGTH - 1); split(ts, p, ".")
        us = p[1] * 1000000 + p[2]
        if (lo < 0 || us < lo) lo = us
        if (us > hi) hi = us
      }
    period = hi - lo + 1
    for (k = 0; bytes < limit; ++k)
      for (i = 1; i <= n; ++i) {
        l = line[i]
        if (match(l, /[0-9]+\.[0-9][0-9][0-9][0-9][0-9][0-9]:/)) {
          ts = substr(l, RSTART, RLENGTH - 1); split(ts, p, ".")
          us = p[1] * 1000000 + p[2] + k * period
          l = substr(l, 1, RSTART - 1) sprintf("%d.%06d:", int(us / 1000000), us % 1000000) substr(l, RSTART + RLENGTH)
        }
        print l
        bytes += length(l) + 1
      }
  }' "$fixture" > "$out"
