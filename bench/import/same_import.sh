#!/usr/bin/env bash
# A text import must write the same recording before and after a change to the importer (issue
# #18 / #15 speed work): imports every text fixture under tests/data/import and tests/import/data
# (and any FILE given) with BEFORE and AFTER and compares, row by row, the tables a user reads:
# events, chains, chain_events (v3 and older), vcpus, and the sessions row without the columns that differ
# between any two runs (command line, start and end time).
# Usage: bench/import/same_import.sh BEFORE AFTER [FILE...]   (exit 1 on any difference)
set -u
BEFORE=$(realpath "$1") AFTER=$(realpath "$2")
shift 2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/same_import.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
fail=0 n=0
dump() {
  # chain_events exists in v3-and-older layouts only (schema v4 dropped it): compared where it
  # exists. -bail: an error fails the dump instead of hashing what came before it.
  local ce=""
  if [ "$(sqlite3 "$1" "SELECT count(*) FROM sqlite_master WHERE name = 'chain_events'")" = 1 ]; then
    ce="SELECT * FROM chain_events ORDER BY chain_id, event_id; SELECT '--';"
  fi
  sqlite3 -bail "$1" "SELECT * FROM events ORDER BY id; SELECT '--';
    SELECT * FROM chains ORDER BY id; SELECT '--'; $ce
    SELECT * FROM vcpus ORDER BY vcpu; SELECT '--';
    SELECT id, source, scenario, guest_path, guest_hash, policy, tool_version, host, kernel, config_json,
           complete, end_reason, end_detail, event_count, exit_count, records_dropped, source_dropped FROM sessions" |
    md5sum | cut -d' ' -f1
  [ "${PIPESTATUS[0]}" = 0 ] || echo "failed"
}
for f in "$ROOT"/tests/data/import/*.txt "$ROOT"/tests/data/import/real/*.txt "$ROOT"/tests/import/data/*.txt "$@"; do
  n=$((n + 1))
  name=$(basename "$f")
  # The same path for both (the session row names the file): a copy under one name.
  cp "$f" "$WORK/$name"
  # ... and one recording name (messages name it), renamed after each import.
  (cd "$WORK" && "$BEFORE" import "$name" --force -o r.db >a.out 2>&1; echo "rc=$?" >>a.out; [ -f r.db ] && mv r.db a.db)
  (cd "$WORK" && "$AFTER" import "$name" --force -o r.db >b.out 2>&1; echo "rc=$?" >>b.out; [ -f r.db ] && mv r.db b.db)
  da="" db=""
  if [ -s "$WORK/a.db" ]; then da=$(dump "$WORK/a.db"); db=$(dump "$WORK/b.db"); fi
  if ! cmp -s "$WORK/a.out" "$WORK/b.out"; then
    echo "FAIL $name: output or exit status differ"; diff "$WORK/a.out" "$WORK/b.out" | head -5; fail=1
  elif [ "$da" != "$db" ] || [[ "$da" == *failed* ]]; then
    echo "FAIL $name: tables differ (or could not be read)"; fail=1
  else
    echo "same $name ($( [ -s "$WORK/a.db" ] && sqlite3 "$WORK/a.db" 'SELECT count(*) FROM events' || echo 'no recording') events)"
  fi
  rm -f "$WORK/a.db" "$WORK/b.db" "$WORK/$name"
done
echo "files: $n"
[ $fail -eq 0 ] && echo "all imports identical" || echo "DIFFERENCES (see above)"
exit $fail
