#!/usr/bin/env bash
# Indexed queries, end to end as a user runs them: a recording of about EVENTS events (the
# built-in timer-irq scenario, ~7 events per VM exit; made once, not timed), then, ROUNDS times
# each, interleaved, whole processes from start to exit:
#   1. exitscope events DB --query "reason:EPT_VIOLATION vector:0x20"
#   2. sqlite3 DB with the same filter written by hand (kind, reason, vector on the raw words)
#   3. exitscope chains DB --chain N   (N = a chain half-way through the recording)
#   4. sqlite3 DB "SELECT ... WHERE origin = N"
# Prints the median wall time and the peak RSS (GNU time's %M) of each, and checks that both
# sides of a pair found the same events. Output goes to /dev/null: printing is not measured.
#
#   bench/query/query_bench.sh [BUILD_DIR] [EVENTS] [ROUNDS]     (defaults: build 1000000 5)
#   ES_BENCH_REUSE=1 ...: keep the recording of an earlier run of the same size
set -euo pipefail
BUILD=${1:-build}
EVENTS=${2:-1000000}
ROUNDS=${3:-5}
ES=$BUILD/bin/exitscope
command -v sqlite3 >/dev/null || { echo "query_bench: needs the sqlite3 command-line shell" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "query_bench: needs GNU time (/usr/bin/time) for the peak RSS" >&2; exit 2; }
[ -x "$ES" ] || { echo "query_bench: build exitscope in $BUILD first" >&2; exit 2; }
mkdir -p "$BUILD/bench/query"
DB=$BUILD/bench/query/query_bench_$EVENTS.db
if [ "${ES_BENCH_REUSE:-0}" != 1 ] || [ ! -f "$DB" ]; then
  # ~7 events per exit: RAISE, QUEUE / INJECT decisions, entry, exit, HLT decision, delivery.
  "$ES" record --scenario timer-irq --arg 0 --max-exits $((EVENTS / 7)) --quiet --no-check -o "$DB" --force
fi
echo "recording: $DB, $(sqlite3 "$DB" 'SELECT count(*) FROM events') events"
N=$(sqlite3 "$DB" "SELECT origin FROM events WHERE id > (SELECT max(id) / 2 FROM events) AND origin != 0 LIMIT 1")
echo "chain: $N ($(sqlite3 "$DB" "SELECT count(*) FROM events WHERE origin = $N") members)"

Q='reason:EPT_VIOLATION vector:0x20'
# kind 1 = VM_EXIT, 6 = NESTED_EXIT; 48 = EPT_VIOLATION in the basic reason [15:0] (the index
# holds the full reason: a VMX recording's exits have [31:16] clear); valid bit [31] + vector [7:0].
# Written on the index's key, (kind << 32) | (reason & 4294967295) (schema v5, schema/indexes.sql), as a user of
# sqlite3 must for SQLite to use it.
SQL_Q="SELECT * FROM events WHERE ((kind << 32) | (reason & 4294967295)) IN ((1 << 32) | 48, (6 << 32) | 48) AND ((intr_info & 2147483903) = 2147483680 OR (idt_vectoring_info & 2147483903) = 2147483680) ORDER BY id"
SQL_C="SELECT * FROM events WHERE origin = $N ORDER BY id"

a=$("$ES" events "$DB" --query "$Q" 2>/dev/null | wc -l); b=$(sqlite3 "$DB" "$SQL_Q" | wc -l)
echo "events --query '$Q': $a events; sqlite3: $b rows"
[ "$a" = "$b" ] || { echo "query_bench: the two sides disagree" >&2; exit 1; }
a=$("$ES" chains "$DB" --chain "$N" | grep -c '^    #'); b=$(sqlite3 "$DB" "$SQL_C" | wc -l)
echo "chains --chain $N: $a members; sqlite3: $b rows"
[ "$a" = "$b" ] || { echo "query_bench: the two sides disagree" >&2; exit 1; }

W=$(mktemp -d /tmp/query_bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
run() {  # NAME CMD...: appends "wall_s rss_kb" to $W/NAME
  local name=$1; shift
  /usr/bin/time -o "$W/t" -f '%e %M' "$@" >/dev/null 2>&1 || true
  cat "$W/t" >> "$W/$name"
}
for _ in $(seq "$ROUNDS"); do
  run events_query "$ES" events "$DB" --query "$Q"
  run sqlite3_query sqlite3 "$DB" "$SQL_Q"
  run chains_chain "$ES" chains "$DB" --chain "$N"
  run sqlite3_origin sqlite3 "$DB" "$SQL_C"
done
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
printf '%-16s %12s %14s\n' command 'median wall s' 'median RSS MB'
for name in events_query sqlite3_query chains_chain sqlite3_origin; do
  wall=$(cut -d' ' -f1 "$W/$name" | median)
  rss=$(cut -d' ' -f2 "$W/$name" | median)
  printf '%-16s %12s %14.1f\n' "$name" "$wall" "$(echo "$rss / 1024" | bc -l)"
done
