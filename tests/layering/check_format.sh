#!/bin/bash
# Every C / C++ source the repository tracks is formatted as .clang-format says (clang-format 14,
# Debian 12's). Prints the files that are not and the command that formats them.
set -u
root=$1
cd "$root" || exit 2
command -v clang-format >/dev/null || { echo "check_format: clang-format not found (apt package clang-format)" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.c' '*.h' '*.cpp' 2>/dev/null || find . -name '*.c' -o -name '*.h' -o -name '*.cpp')
[ "${#files[@]}" -gt 0 ] || { echo "check_format: no sources found under $root" >&2; exit 2; }
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ "${#bad[@]}" -gt 0 ]; then
  echo "check_format: ${#bad[@]} of ${#files[@]} files are not formatted:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "format them with: clang-format -i ${bad[*]}" >&2
  exit 1
fi
echo "check_format: ${#files[@]} files formatted"
