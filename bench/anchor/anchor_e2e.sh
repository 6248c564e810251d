#!/usr/bin/env bash
# Whole-process timings of an `exitscope import` or `exitscope record` command against SQLite's
# ceiling for the same rows (sqlite_anchor, same run, rounds interleaved), issue #18.
#
#   bench/anchor/anchor_e2e.sh BUILD ROUNDS import FILE
#   bench/anchor/anchor_e2e.sh BUILD ROUNDS record --scenario timer-irq --arg 0 --max-exits 150000
#   BEFORE=/path/to/old/exitscope bench/anchor/anchor_e2e.sh ...   # also time an older binary
#   REPORT=1 bench/anchor/anchor_e2e.sh BUILD ROUNDS import FILE.dat  # also `trace-cmd report` of it
#
# One unmeasured run first makes the recording whose rows the anchor writes (sqlite_anchor
# dump). Then each round runs, back to back: exitscope, the anchor with WAL (what exitscope
# writes with), the anchor with no journal at all, and BEFORE if given. Printed per program:
# wall and CPU (user + sys) seconds, min / median / max over the rounds, peak RSS, and the
# ratios anchor / exitscope (>= 0.9 is the target: exitscope at 0.9x the ceiling's speed) from
# the medians and as the median of each round's own ratio.
set -euo pipefail
build=$1 rounds=$2 mode=$3
shift 3
es="$build/bin/exitscope"
anchor="$build/bin/sqlite_anchor"
work=$(mktemp -d "${TMPDIR:-/tmp}/anchor_e2e.XXXXXX")
trap 'rm -rf "$work"' EXIT
case "$mode" in
  import) cmd=("$es" import "$1" --quiet --force -o "$work/es.db") ;;
  record) cmd=("$es" record "$@" --quiet --no-check --force -o "$work/es.db") ;;
  *) echo "anchor_e2e: mode is import or record" >&2; exit 2 ;;
esac
"${cmd[@]}" >/dev/null
"$anchor" dump "$work/es.db" "$work/rows.bin" >/dev/null
rows=$(sqlite3 "$work/es.db" "SELECT count(*) FROM events")
chains=$(sqlite3 "$work/es.db" "SELECT count(*) FROM chains")
echo "command: ${cmd[*]}"
"$anchor" write "$work/rows.bin" "$work/check.db" --journal off >/dev/null
# A fair comparison: the anchor builds the same indexes as exitscope for these rows (the time
# index only where the times do not follow the ids, schema/time_index.sql); checked once here,
# on this exitscope's file (BEFORE's rounds overwrite it).
index_set() { sqlite3 "$1" "SELECT group_concat(name, ' ') FROM (SELECT name FROM sqlite_schema WHERE type = 'index' AND name LIKE 'events%' ORDER BY name)"; }
if [ "$(index_set "$work/es.db")" != "$(index_set "$work/check.db")" ]; then
  echo "anchor_e2e: the anchor's indexes ($(index_set "$work/check.db")) are not exitscope's ($(index_set "$work/es.db"))" >&2
  exit 1
fi
echo "indexes (both): $(index_set "$work/es.db")"
if [ "$(sqlite3 "$work/es.db" "PRAGMA page_size")" != "$(sqlite3 "$work/check.db" "PRAGMA page_size")" ]; then
  echo "anchor_e2e: the anchor's page size is not exitscope's" >&2
  exit 1
fi
rm -f "$work/check.db"
echo "rows: $rows events, $chains chains; load: $(cut -d' ' -f1-3 /proc/loadavg)"

timed() {  # label, command...: appends "wall cpu rss_kb" to $work/label
  local label=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$work/t" "$@" >/dev/null 2>&1
  awk '{ printf "%s %.2f %d\n", $1, $2 + $3, $4 }' "$work/t" >> "$work/$label"
}
for ((r = 1; r <= rounds; r++)); do
  timed exitscope "${cmd[@]}"
  timed anchor_wal "$anchor" write "$work/rows.bin" "$work/anchor.db" --journal wal
  timed anchor_off "$anchor" write "$work/rows.bin" "$work/anchor.db" --journal off
  if [ -n "${BEFORE:-}" ]; then
    bcmd=("${cmd[@]}"); bcmd[0]=$BEFORE
    timed before "${bcmd[@]}"
  fi
  if [ -n "${REPORT:-}" ]; then
    timed report trace-cmd report -i "$1"
  fi
done
stats() {  # file column -> "min / median / max"
  sort -n -k"$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
    printf "%.2f / %.2f / %.2f", v[1], m, v[NR] }'
}
median() { sort -n -k"$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf "%-11s %-24s %-24s %s\n" program "wall s min/med/max" "cpu s min/med/max" "peak RSS MB (max)"
for p in exitscope anchor_wal anchor_off before report; do
  [ -f "$work/$p" ] || continue
  printf "%-11s %-24s %-24s %d\n" "$p" "$(stats "$work/$p" 1)" "$(stats "$work/$p" 2)" \
    "$(sort -n -k3 "$work/$p" | tail -1 | awk '{ print int($3 / 1024) }')"
done
for a in anchor_wal anchor_off; do
  for col in 1 2; do
    what=$([ $col = 1 ] && echo wall || echo cpu)
    of_medians=$(awk -v a="$(median "$work/$a" $col)" -v e="$(median "$work/exitscope" $col)" 'BEGIN { printf "%.2f", a / e }')
    per_round=$(paste "$work/$a" "$work/exitscope" | awk -v c=$col '{ print $c / $(c + 3) }' | sort -n |
      awk '{ v[NR] = $1 } END { printf "%.2f (%.2f..%.2f)", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[1], v[NR] }')
    echo "$a / exitscope, $what: $of_medians of the medians; per round $per_round"
  done
done
if [ -n "${REPORT:-}" ]; then
  for col in 1 2; do
    what=$([ $col = 1 ] && echo wall || echo cpu)
    echo "exitscope / trace-cmd report, $what: $(awk -v a="$(median "$work/exitscope" $col)" -v e="$(median "$work/report" $col)" 'BEGIN { printf "%.2f", a / e }') of the medians (target <= 1.0)"
  done
fi
if [ -n "${BEFORE:-}" ]; then
  echo "before / exitscope, cpu: $(awk -v a="$(median "$work/before" 2)" -v e="$(median "$work/exitscope" 2)" 'BEGIN { printf "%.2f", a / e }') of the medians"
fi
