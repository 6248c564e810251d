#!/usr/bin/env bash
# clang-tidy (the checks of ROOT/.clang-tidy) on the C / C++ files a change touches (issue #19):
# those that differ from the merge base with main (committed or not), or, where that is HEAD
# itself (a clean clone of main), those of the last commit. A changed header is checked through
# the sources of its folder that include it. Compile flags come from BUILD/compile_commands.json
# (CMAKE_EXPORT_COMPILE_COMMANDS); a file not in it (a test the build leaves out) is skipped and
# named. Any diagnostic fails the check.
# Usage: check_tidy.sh ROOT BUILD [FILE...]   (FILEs given: check those instead of the changed ones)
set -u
root=$(realpath "${1:?usage: check_tidy.sh ROOT BUILD [FILE...]}")
build=$(realpath "${2:?usage: check_tidy.sh ROOT BUILD [FILE...]}")
shift 2
tidy=$(command -v clang-tidy-14 || command -v clang-tidy) || {
  echo "check_tidy: clang-tidy not found (Debian package clang-tidy; ./run installs it)" >&2
  exit 2
}
[ -f "$root/.clang-tidy" ] || {
  echo "check_tidy: $root/.clang-tidy does not exist: run the check on the source tree's root" >&2
  exit 2
}
db=$build/compile_commands.json
[ -f "$db" ] || {
  echo "check_tidy: $db does not exist: configure with -DCMAKE_EXPORT_COMPILE_COMMANDS=ON (the top CMakeLists.txt sets it)" >&2
  exit 2
}

if [ $# -gt 0 ]; then
  changed=("$@")
  what="the files given"
else
  cd "$root" || exit 2
  base=""
  for main in main origin/main; do
    base=$(git merge-base HEAD "$main" 2>/dev/null) && break
  done
  if [ -z "$base" ] || [ "$base" = "$(git rev-parse HEAD)" ]; then
    base=$(git rev-parse -q --verify HEAD~1) || base=$(git hash-object -t tree /dev/null)
    what="the last commit and the work tree"
  else
    what="the changes since the merge base with main (${base:0:12})"
  fi
  mapfile -t changed < <(git diff --name-only --diff-filter=d "$base" -- '*.c' '*.cpp' '*.h' '*.hpp' |
    sed "s|^|$root/|")
fi

# The compile database's sources, and which of them each changed file stands for.
mapfile -t known < <(grep -oE '"file": *"[^"]+"' "$db" | sed -E 's/"file": *"([^"]+)"/\1/' | sort -u)
declare -A known_set=()
for f in "${known[@]}"; do known_set[$f]=1; done
# Object -> source (the -o and "file" of each compile_commands.json entry), and Ninja's record
# of the headers each object was built from.
declare -A source_of=()
while read -r o f; do source_of[$o]=$f; done < <(sed -nE \
  -e 's/^ *"command": .* -o ([^ ]+) .*/o \1/p' -e 's/^ *"file": *"([^"]+)".*/f \1/p' "$db" |
  awk '$1 == "o" { o = $2 } $1 == "f" { print o, $2 }')
deps=$(ninja -C "$build" -t deps 2>/dev/null || true)
declare -A pick=()
headers=()
skipped=()
for f in "${changed[@]}"; do
  f=$(realpath -m "$f")
  case "$f" in
    */build/* | */build-*/*) continue ;;
    *.c | *.cpp)
      if [ -n "${known_set[$f]-}" ]; then pick[$f]=1; else skipped+=("${f#"$root"/}"); fi
      ;;
    *.h | *.hpp)
      # Checked through up to two sources that include it, directly or not (Ninja's record of
      # each object's headers), those of its own folder first.
      headers+=("$f")
      rel=${f#"$root"/}
      mapfile -t users < <(awk -v h="/$rel" -v d="/${rel%/*}/" '
        /^[^ ].*: #deps/ { obj = $1; sub(/:$/, "", obj); src = ""; next }
        /^    / { p = $1; if (src == "") src = p; if (substr(p, length(p) - length(h) + 1) == h) print (index(src, d) ? 0 : 1), obj }
      ' <<< "$deps" | sort -n | head -2 | cut -d' ' -f2)
      found=0
      for o in "${users[@]}"; do
        s=${source_of[$o]-}
        [ -n "$s" ] && pick[$s]=1 && found=1
      done
      [ "$found" -eq 1 ] || skipped+=("$rel (no source of this build includes it)")
      ;;
  esac
done
[ "${#skipped[@]}" -eq 0 ] || printf 'check_tidy: not checked (not in %s): %s\n' "$db" "${skipped[*]}"
if [ "${#pick[@]}" -eq 0 ]; then
  echo "check_tidy: no C / C++ file to check in $what"
  exit 0
fi

# Diagnostics in the changed headers count, by their path from the root (the compiler may reach
# one through build/layers/, cmake/layers.cmake); in other headers they do not.
filter='^$'
if [ "${#headers[@]}" -gt 0 ]; then
  filter="/($(printf '%s\n' "${headers[@]#"$root"/}" | sed 's/[.[\*^$()+?{|]/\\&/g' | paste -sd'|'))$"
fi
out=$(printf '%s\0' "${!pick[@]}" | xargs -0 -n 2 -P 2 "$tidy" -p "$build" --quiet \
  --config-file="$root/.clang-tidy" --header-filter="$filter" --extra-arg=-Wno-unknown-warning-option 2>&1)
rc=$?
diags=$(grep -E '(warning|error): ' <<< "$out" | sort -u)
if [ "$rc" -ne 0 ] || [ -n "$diags" ]; then
  echo "$out" | grep -vE '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$'
  echo "check_tidy: clang-tidy found $(grep -c . <<< "$diags") problem(s) in ${#pick[@]} file(s) of $what (.clang-tidy lists the checks); fix them, or say why on the line with // NOLINT(check-name)"
  exit 1
fi
echo "check_tidy: ${#pick[@]} file(s) of $what pass clang-tidy (checks: .clang-tidy)"
