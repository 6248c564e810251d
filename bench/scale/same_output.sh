#!/usr/bin/env bash
# Issue #18: settling chains early (the recorder's ChainBuilder, the checker) must not change any
# output, nor must holding no chain's members (ES_CHAIN_HOLD=1 on every AFTER run). For every
# built-in scenario (and the bug / policy switches) and every imported text fixture under
# tests/data/import, this makes the recording twice: with BEFORE (a binary without
# the change) and with AFTER under ES_SETTLE_WINDOW=1 (every chain settled as soon as the sweep
# runs, so every late fact is met), and compares
#   - the chains table, the chain membership (events.origin) and the live checker's violation
#     rows of both files, row by row (AFTER's live checker forgets settled chains to disk);
#   - on AFTER's file, BEFORE's and AFTER's (ES_SETTLE_WINDOW=1) stdout and exit status of
#     `chains`, `chains --outcome lost`, `check`, `export --format text|markdown|chrome`;
#   - on both files, BEFORE's and AFTER's output of `events`, `stats` and `export` over a time
#     window (the middle third) and of `info` (issue #18: AFTER's own files have no time index
#     where their times follow their ids).
# Usage: bench/scale/same_output.sh BEFORE AFTER [WORKDIR]    (exit 1 on any difference)
# Prints one line per recording, then the totals and how often the early settling took effect
# (chains settled while written, recordings that fell back to the read-back, chains the checker
# forgot and read back).
set -u
BEFORE=$1 AFTER=$2 WORK=${3:-/tmp/es_same_output}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$WORK" && mkdir -p "$WORK"
# Every AFTER run holds no chain of more than one member (ES_CHAIN_HOLD=1: each chain is decided,
# listed and exported from its streamed members, issue #18): AFTER is a wrapper that sets it.
printf '#!/bin/sh\nES_CHAIN_HOLD=1 exec "%s" "$@"\n' "$(realpath "$AFTER")" >"$WORK/after" && chmod +x "$WORK/after" && AFTER=$WORK/after
fail=0 n=0 settled=0 fallback=0 forgotten=0 recalled=0 live_forgotten=0 live_recalled=0

# Chain membership is events.origin (schema v4 dropped chain_events, which repeated it; v3's 0 and
# v4's NULL both fail `origin != 0`). BEFORE and AFTER must write the same schema version.
# The live checker's findings are the violation rows (kind 8) `record` stored.
dump() { sqlite3 "$1" "SELECT * FROM chains ORDER BY id; SELECT '--'; SELECT origin, id FROM events WHERE origin != 0 ORDER BY origin, id; SELECT '--'; SELECT id, reason, cause, origin, extra FROM events WHERE kind = 8 ORDER BY id"; }

compare() {  # NAME: a.db (BEFORE) and b.db (AFTER) exist in $WORK/NAME
  local d=$WORK/$1 bad=""
  n=$((n + 1))
  if [ ! -s "$d/a.db" ] || [ ! -s "$d/b.db" ]; then echo "FAIL $1: a recording is missing"; fail=1; return; fi
  [ "$(dump "$d/a.db")" == "$(dump "$d/b.db")" ] || bad+=" chains-table"
  local nc; nc=$(sqlite3 "$d/b.db" 'SELECT count(*) FROM chains')
  local i=0
  while IFS= read -r args; do
    i=$((i + 1))
    # shellcheck disable=SC2086
    "$BEFORE" $args "$d/b.db" >"$d/before.$i" 2>/dev/null; echo "rc=$?" >>"$d/before.$i"
    # shellcheck disable=SC2086
    ES_SETTLE_WINDOW=1 "$AFTER" $args "$d/b.db" >"$d/after.$i" 2>>"$d/after.err"; echo "rc=$?" >>"$d/after.$i"
    cmp -s "$d/before.$i" "$d/after.$i" || bad+=" [$args]"
  done <<'CMDS'
chains
chains --outcome lost
check
export --format text
export --format markdown
export --format chrome
CMDS
  # Time windows (issue #18: AFTER finds a window's edges by binary search over ids on its own
  # file, which has no time index, and through events_time on BEFORE's): the middle third of the
  # recording, on both files, BEFORE's and AFTER's output compared.
  local f0 t0 t1 lo hi j=0
  for f0 in a b; do
    read -r t0 t1 < <(sqlite3 -separator ' ' "$d/$f0.db" 'SELECT min(time_ns), max(time_ns) FROM events')
    lo=$((t0 + (t1 - t0) / 3)) hi=$((t0 + 2 * (t1 - t0) / 3))
    for args in "events --from $lo --to $hi" "events --from $lo" "events --to $hi" "stats --from $lo --to $hi" \
                "stats --from $lo --no-chains" "export --format text --from $lo --to $hi" \
                "export --format chrome --from $lo --to $hi" "export --format markdown --to $hi" "info"; do
      j=$((j + 1))
      # shellcheck disable=SC2086
      "$BEFORE" $args "$d/$f0.db" >"$d/wbefore.$j" 2>/dev/null; echo "rc=$?" >>"$d/wbefore.$j"
      # shellcheck disable=SC2086
      "$AFTER" $args "$d/$f0.db" >"$d/wafter.$j" 2>/dev/null; echo "rc=$?" >>"$d/wafter.$j"
      cmp -s "$d/wbefore.$j" "$d/wafter.$j" || bad+=" [$f0: $args]"
    done
  done
  local s f g r
  s=$(sed -n 's/.*chain builder: \([0-9]*\) chains settled.*/\1/p' "$d/b.err" | tail -1)
  grep -q "read back (late fact" "$d/b.err" && f=1 || f=0
  g=$(sed -n 's/.*checker: \([0-9]*\) settled chains forgotten, \([0-9]*\) read back.*/\1/p' "$d/after.err" | head -1)
  r=$(sed -n 's/.*checker: \([0-9]*\) settled chains forgotten, \([0-9]*\) read back.*/\2/p' "$d/after.err" | head -1)
  local lg lr
  lg=$(sed -n 's/.*checker: \([0-9]*\) settled chains forgotten, \([0-9]*\) read back.*/\1/p' "$d/b.err" | head -1)
  lr=$(sed -n 's/.*checker: \([0-9]*\) settled chains forgotten, \([0-9]*\) read back.*/\2/p' "$d/b.err" | head -1)
  live_forgotten=$((live_forgotten + ${lg:-0})) live_recalled=$((live_recalled + ${lr:-0}))
  settled=$((settled + ${s:-0})) fallback=$((fallback + f)) forgotten=$((forgotten + ${g:-0})) recalled=$((recalled + ${r:-0}))
  if [ -n "$bad" ]; then echo "FAIL $1:$bad"; fail=1; else echo "same $1 ($nc chains; settled ${s:-0}, read-back $f, checker forgot ${g:-0} / recalled ${r:-0}, live ${lg:-0} / ${lr:-0})"; fi
}

record_both() {  # NAME ARGS...
  local name=$1; shift
  mkdir -p "$WORK/$name"
  "$BEFORE" record "$@" -o "$WORK/$name/a.db" >/dev/null 2>&1
  ES_SETTLE_WINDOW=1 "$AFTER" record "$@" -o "$WORK/$name/b.db" >/dev/null 2>"$WORK/$name/b.err"
  compare "$name"
}

import_both() {  # NAME FILE
  mkdir -p "$WORK/$1"
  "$BEFORE" import "$2" -o "$WORK/$1/a.db" >/dev/null 2>&1
  ES_SETTLE_WINDOW=1 "$AFTER" import "$2" -o "$WORK/$1/b.db" >/dev/null 2>"$WORK/$1/b.err"
  compare "$1"
}

for s in $("$AFTER" scenarios | awk '{print $1}'); do record_both "$s" --scenario "$s" --max-exits 20000; done
record_both bug-exit-with-vectoring --scenario nested-irq-vectoring --bug exit-with-vectoring --max-exits 20000
record_both bug-async-pf-into-l2 --scenario nested-async-pf --bug async-pf-into-l2 --max-exits 20000
record_both bug-ignore-nmi-unblocking --scenario nmi-iret-ept --bug ignore-nmi-unblocking --max-exits 20000
record_both policy-drop-hw --scenario exception-vectoring-policy --policy drop-hw-exceptions --max-exits 20000
for f in "$ROOT"/tests/data/import/*.txt "$ROOT"/tests/data/import/real/*.txt; do import_both "import-$(basename "$f" .txt)" "$f"; done

echo "recordings: $n; chains settled while written: $settled; recordings read back: $fallback;" \
     "checker: $forgotten settled chains forgotten, $recalled read back;" \
     "live checker: $live_forgotten forgotten to disk, $live_recalled recalled"
[ $fail -eq 0 ] && echo "all outputs identical" || echo "DIFFERENCES (see above)"
exit $fail
