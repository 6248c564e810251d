#!/usr/bin/env bash
# Every folder stays in its layer (DESIGN.md "Layers"; issues #15, #19). The layers are declared
# once, in cmake/layers.txt (one row per folder: its targets and the lower folders it may use);
# the compiler holds each target to what it links (cmake/layers.cmake), and this script holds
# the sources and the link lists to the table:
#   - every quoted #include of a layered folder names a file of the folder itself or of a folder
#     its row allows (with what those allow): an include that runs up or sideways is refused;
#   - no cycle: between folders (nor in the table itself, whose rows may use only rows above
#     them), nor between files;
#   - every C / C++ source lies in a folder of the table, so a new folder cannot go unchecked;
#   - with LINKS (written by CMake, tests/layering/CMakeLists.txt: one line per target,
#     "target<TAB>folder it is defined in<TAB>its link list"), every project target a layered
#     target links belongs to a folder its row allows, and every library or program defined in a
#     layered folder is in some row.
# Usage: check_includes.sh ROOT [LINKS]   (the table is ROOT/cmake/layers.txt)
# Prints one line per violation naming the file or target, the line and the rule; exit 1 if any.
set -u
root=${1:?usage: check_includes.sh ROOT [LINKS]}
links_file=${2-}
[ -z "$links_file" ] || links_file=$(realpath -m "$links_file")
table=$root/cmake/layers.txt
bad=0

fail() {
  echo "layering: $*"
  bad=1
}

[ -f "$table" ] || {
  echo "layering: $table does not exist: run the check on the source tree's root"
  exit 2
}

# --- The table -----------------------------------------------------------------------------
declare -a folders=()       # layered folders, bottom to top
declare -A rank=()          # folder -> row number
declare -A uses=()          # folder -> folders its row names
declare -A target_folder=() # target -> folder
declare -A free_target=()   # targets any layer may link (the '*' row)
declare -A top=()           # folders above every layer ('| *')
n=0
while IFS= read -r raw; do
  line=${raw%%#*}
  [[ "$line" =~ [^[:space:]] ]] || continue
  if [[ "$line" != *'|'* ]]; then
    fail "cmake/layers.txt: row \"$raw\" has no '|' between the targets and what the folder uses"
    continue
  fi
  read -ra left <<< "${line%%|*}"
  read -ra right <<< "${line#*|}"
  folder=${left[0]%/}
  if [ "$folder" = '*' ]; then
    for t in "${left[@]:1}"; do free_target[$t]=1; done
    continue
  fi
  if [ "${right[*]-}" = '*' ]; then
    top[$folder]=1
    continue
  fi
  n=$((n + 1))
  folders+=("$folder")
  rank[$folder]=$n
  for t in "${left[@]:1}"; do target_folder[$t]=$folder; done
  u=""
  for f in "${right[@]}"; do
    f=${f%/}
    if [ -z "${rank[$f]-}" ]; then
      fail "cmake/layers.txt: $folder uses $f, which is not a row above it (a folder may use only lower layers; a cycle is refused)"
      continue
    fi
    u+=" $f"
  done
  uses[$folder]=$u
done < "$table"

# allowed[F]: F, the folders its row names, and theirs (rows above only, so computed in order).
declare -A allowed=()
for f in "${folders[@]}"; do
  a=" $f "
  for u in ${uses[$f]}; do
    for x in ${allowed[$u]}; do
      [[ "$a" == *" $x "* ]] || a+="$x "
    done
  done
  allowed[$f]=$a
done

# Folders by length, longest first: a path belongs to the longest folder that prefixes it.
mapfile -t by_length < <(for f in "${folders[@]}" "${!top[@]}"; do echo "${#f} $f"; done | sort -rn | cut -d' ' -f2-)

# folder_of PATH: sets `owner` to the folder of a repository path ("" if none).
folder_of() {
  owner=""
  local f
  for f in "${by_length[@]}"; do
    if [[ "$1" == "$f"/* ]]; then
      owner=$f
      return
    fi
  done
}

# --- Includes ------------------------------------------------------------------------------
cd "$root" || exit 2
mapfile -t sources < <(git ls-files --cached --others --exclude-standard '*.c' '*.h' '*.cpp' '*.hpp' '*.def' 2>/dev/null ||
  find . -type f \( -name '*.c' -o -name '*.h' -o -name '*.cpp' -o -name '*.hpp' -o -name '*.def' \) | sed 's|^\./||')
[ "${#sources[@]}" -gt 0 ] || {
  echo "layering: no C / C++ source under $root: wrong root?"
  exit 2
}

checked=0
folder_edges=()
file_edges=()
for file in "${sources[@]}"; do
  [ -f "$file" ] || continue # deleted in the work tree, not yet in git
  folder_of "$file"
  from=$owner
  if [ -z "$from" ]; then
    fail "$file is in no folder of cmake/layers.txt: add a row for ${file%/*}/ at the height of its layer"
    continue
  fi
  [ -n "${top[$from]-}" ] && continue
  while IFS=: read -r line path; do
    checked=$((checked + 1))
    dir=${file%/*}
    if [ -f "$dir/$path" ]; then # relative to the including file
      target=$(realpath -m --relative-to=. "$dir/$path")
    elif [[ "$path" == exitscope/* ]]; then
      target=probes/include/$path
    elif [[ "$path" == */* ]]; then
      target=$path
    else
      continue # a generated header of the build tree (hv_guest_blobs.h): only its target's include path has it
    fi
    folder_of "$target"
    to=$owner
    if [ -z "$to" ] || [ -n "${top[$to]-}" ]; then
      fail "$file:$line includes \"$path\", which is in no layer of cmake/layers.txt"
      continue
    fi
    [ -f "$target" ] && file_edges+=("$file $target")
    [ "$to" = "$from" ] && continue
    folder_edges+=("$from $to")
    if [[ "${allowed[$from]}" != *" $to "* ]]; then
      if [ "${rank[$to]}" -gt "${rank[$from]}" ]; then how="runs up to $to/"; else how="runs sideways to $to/"; fi
      fail "$file:$line includes \"$path\": it $how, but $from/ may use only$(printf ' %s/' ${allowed[$from]}) (cmake/layers.txt)"
    fi
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]+"' "$file" |
    sed -E 's/^([0-9]+):[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1:\2/')
done

# cycle NAME EDGES...: fails when the "a b" edges contain a loop (tsort names its members).
cycle() {
  local what=$1 out
  shift
  [ $# -gt 0 ] || return 0
  if ! out=$(printf '%s\n' "$@" | tsort 2>&1 >/dev/null); then
    fail "$what include each other in a cycle: $(grep -v 'input contains a loop' <<< "$out" | sed 's/^tsort: //' | tr '\n' ' ')"
  elif [ -n "$out" ]; then
    fail "$what include each other in a cycle: $(grep -v 'input contains a loop' <<< "$out" | sed 's/^tsort: //' | tr '\n' ' ')"
  fi
}
cycle "folders" "${folder_edges[@]}"
cycle "files" "${file_edges[@]}"

# --- Links ---------------------------------------------------------------------------------
links_checked=0
if [ -n "$links_file" ]; then
  [ -f "$links_file" ] || {
    echo "layering: $links_file does not exist (CMake writes it at generation: re-run cmake)"
    exit 2
  }
  while IFS=$'\t' read -r tgt dir links; do
    [ -n "$tgt" ] || continue
    from=${target_folder[$tgt]-}
    if [ -z "$from" ]; then
      [ -n "${free_target[$tgt]-}" ] && continue
      folder_of "$dir/"
      [ -n "$owner" ] && [ -n "${top[$owner]-}" ] && continue
      [ "$dir" = . ] && continue
      fail "target $tgt (defined in $dir/) is in no row of cmake/layers.txt: add it to its folder's row"
      continue
    fi
    IFS=';' read -ra libs <<< "$links"
    for lib in "${libs[@]}"; do
      lib=${lib#'$<LINK_ONLY:'}
      lib=${lib%'>'}
      [ -n "$lib" ] || continue
      links_checked=$((links_checked + 1))
      [ -n "${free_target[$lib]-}" ] && continue
      to=${target_folder[$lib]-}
      [ -n "$to" ] || continue # not a target of this project (SQLite::SQLite3, Qt6::Widgets, dl)
      if [[ "${allowed[$from]}" != *" $to "* ]]; then
        if [ "${rank[$to]}" -gt "${rank[$from]}" ]; then how="runs up to $to/"; else how="runs sideways to $to/"; fi
        fail "$tgt links \"$lib\": it $how, but $from/ may use only$(printf ' %s/' ${allowed[$from]}) (cmake/layers.txt)"
      fi
    done
  done < "$links_file"
fi

# gui/ and render/ ask replay/ for decoded text (issue #19: they used to decode hardware words
# themselves): no hv/ header there, although the table lets them reach hv/arch through replay/.
while IFS=: read -r file line text; do
  [ -n "$file" ] || continue
  path=${text#*\"}
  fail "$file:$line includes \"${path%%\"*}\": gui/ and render/ take decoded text from replay/, never an hv/ header"
done < <(grep -rHn --include='*.h' --include='*.cpp' -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"hv/' gui render 2>/dev/null)

if [ "$checked" -eq 0 ]; then
  echo "layering: no #include found under $root: wrong root?"
  exit 1
fi
[ "$bad" -eq 0 ] &&
  echo "layering: ${#folders[@]} layers; $checked includes and $links_checked links checked, none runs up or sideways, no cycle"
exit "$bad"
