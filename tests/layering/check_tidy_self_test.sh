#!/usr/bin/env bash
# check_tidy.sh must fail on a planted defect and pass a clean file: two one-file projects in a
# temporary directory, each with its own compile_commands.json, checked with the tree's .clang-tidy.
# Usage: check_tidy_self_test.sh CHECK_TIDY.SH ROOT
set -u
check=${1:?usage: check_tidy_self_test.sh CHECK_TIDY.SH ROOT}
root=${2:?usage: check_tidy_self_test.sh CHECK_TIDY.SH ROOT}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
passed=0
project() { # project DIR SOURCE-TEXT: DIR/x.cpp and DIR/compile_commands.json
  mkdir -p "$1"
  printf '%s\n' "$2" > "$1/x.cpp"
  printf '[{"directory": "%s", "command": "c++ -std=c++20 -Wall -c x.cpp -o x.o", "file": "%s/x.cpp"}]\n' "$1" "$1" \
    > "$1/compile_commands.json"
}
expect() { # expect NAME RC PATTERN OUTPUT-RC OUTPUT
  if [ "$4" -ne "$2" ] || ! grep -qF -- "$3" <<< "$5"; then
    echo "FAIL $1: wanted exit $2 and a line with '$3'; got exit $4:"
    echo "$5"
    fail=$((fail + 1))
  else
    echo "ok   $1"
    passed=$((passed + 1))
  fi
}

project "$tmp/clean" '#include <string>
#include <utility>
std::string joined(const std::string& a, const std::string& b) { return a + b; }'
out=$("$check" "$root" "$tmp/clean" "$tmp/clean/x.cpp"); rc=$?
expect "a clean file passes" 0 "pass clang-tidy" "$rc" "$out"

project "$tmp/moved" '#include <string>
#include <utility>
std::string twice(std::string s) {
  std::string t = std::move(s);
  return s + t;
}'
out=$("$check" "$root" "$tmp/moved" "$tmp/moved/x.cpp"); rc=$?
expect "a use after move is refused" 1 "bugprone-use-after-move" "$rc" "$out"

project "$tmp/copied" '#include <string>
#include <vector>
size_t total(const std::vector<std::string>& v) {
  size_t n = 0;
  for (const std::string s : v) n += s.size();
  return n;
}'
out=$("$check" "$root" "$tmp/copied" "$tmp/copied/x.cpp"); rc=$?
expect "a copy in a range-for is refused" 1 "performance-for-range-copy" "$rc" "$out"

echo "$passed passed, $fail failed"
[ "$fail" -eq 0 ]
