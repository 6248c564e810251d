#!/usr/bin/env bash
# The KVM event layer stays below the sources that use it (DESIGN.md "Layers"; issues #15, #19):
#   - a file in kvmtrace/ includes only kvmtrace/, the record ABI (exitscope/..., probes/include/)
#     and hv/arch/: nothing from probes/ (but probes/include), replay/, gui/, schema/, ...;
#   - a file in hv/ includes only hv/, the ABI (exitscope/..., probes/include/), the probe bus
#     header it calls (probes/bus/probe_bus.h) and its generated guest blobs (hv_guest_blobs.h);
#   - a file anywhere in probes/ includes nothing from replay/ or gui/ (live KVM decodes with
#     kvmtrace/; the recorder takes replay's chains from its caller, probes/recorder/record_steps.h;
#     the ABI's names are exitscope/names.h);
#   - session/ includes probes/, hv/, replay/ (not replay/cli), schema/ and the ABI; of those, none
#     includes session/ (the CLI and gui/ sit above it);
#   - es_kvmtrace links only es_probe_abi, hv_arch (and the warning flags); es_kvm does not link
#     es_import; es_recorder and es_plugins link no replay/ library (es_replay, es_import,
#     es_export, es_check, es_check_live, es_diff).
# Usage: check_includes.sh ROOT [KVMTRACE_LINKS [KVM_LINKS [RECORDER_LINKS [PLUGINS_LINKS]]]]
# (link lists ';'-separated, as CMake's LINK_LIBRARIES). Prints one line per violation naming the
# file or target, the line and the rule; exit 1 if there is any.
set -u
root=${1:?usage: check_includes.sh ROOT [KVMTRACE_LINKS [KVM_LINKS]]}
kvmtrace_links=${2-}
kvm_links=${3-}
recorder_links=${4-}
plugins_links=${5-}
bad=0
checked=0

# include_lines DIR: "file:line:path" for every quoted #include under DIR (sources and headers).
include_lines() {
  [ -d "$1" ] || return 0
  grep -rnE --include='*.h' --include='*.hpp' --include='*.c' --include='*.cpp' --include='*.def' \
    '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]+"' "$1" |
    sed -E 's/^([^:]+):([0-9]+):[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1:\2:\3/'
}

if [ ! -d "$root/kvmtrace" ]; then
  echo "layering: $root/kvmtrace does not exist: run the check on the source tree's root"
  exit 1
fi

while IFS=: read -r file line path; do
  [ -n "$file" ] || continue
  checked=$((checked + 1))
  case "$path" in
    kvmtrace/* | hv/arch/* | exitscope/* | probes/include/*) ;;
    *)
      echo "layering: ${file#"$root"/}:$line includes \"$path\": kvmtrace/ may include only kvmtrace/, the record ABI (probes/include/exitscope) and hv/arch/"
      bad=1
      ;;
  esac
done < <(include_lines "$root/kvmtrace")

while IFS=: read -r file line path; do
  [ -n "$file" ] || continue
  checked=$((checked + 1))
  case "$path" in
    hv/* | exitscope/* | probes/include/* | probes/bus/probe_bus.h | hv_guest_blobs.h) ;;
    *)
      echo "layering: ${file#"$root"/}:$line includes \"$path\": hv/ may include only hv/, the record ABI (probes/include/exitscope) and probes/bus/probe_bus.h"
      bad=1
      ;;
  esac
done < <(include_lines "$root/hv")

while IFS=: read -r file line path; do
  [ -n "$file" ] || continue
  checked=$((checked + 1))
  case "$path" in
    replay/* | gui/*)
      case "$file" in
        "$root"/probes/kvm/*) why="live KVM uses kvmtrace/" ;;
        "$root"/probes/recorder/*) why="the recorder takes replay's steps from its caller, probes/recorder/record_steps.h" ;;
        *) why="probes/ sits below replay/ and gui/; ABI names are in exitscope/names.h" ;;
      esac
      echo "layering: ${file#"$root"/}:$line includes \"$path\": probes/ may not include replay/ or gui/ ($why)"
      bad=1
      ;;
  esac
done < <(include_lines "$root/probes")

# gui/ and render/ (issue #19) get decoded text from replay/ and include no hv/ header; render/
# (the pictures, below the GUI) includes nothing from gui/.
while IFS=: read -r file line path; do
  [ -n "$file" ] || continue
  checked=$((checked + 1))
  case "$file:$path" in
    *:hv/* | "$root"/render/*:gui/*)
      echo "layering: ${file#"$root"/}:$line includes \"$path\": gui/ and render/ ask replay/ for decoded text and include no hv/ header; render/ includes no gui/ header"
      bad=1
      ;;
  esac
done < <(include_lines "$root/gui"; include_lines "$root/render")

# session/ (issue #19) sits above probes/ hv/ replay/ schema/ and below the CLI (replay/cli) and gui/.
while IFS=: read -r file line path; do
  [ -n "$file" ] || continue
  rel=${file#"$root"/}
  case "$rel" in replay/cli/*) continue ;; esac
  checked=$((checked + 1))
  case "$rel:$path" in
    session/*:replay/cli/*) ;;
    session/*:session/* | session/*:probes/* | session/*:hv/* | session/*:replay/* | session/*:schema/* | \
    session/*:kvmtrace/* | session/*:exitscope/*) continue ;;
    session/*:* | probes/*:session/* | replay/*:session/* | schema/*:session/*) ;;
    *) continue ;;
  esac
  echo "layering: $rel:$line includes \"$path\": session/ includes only probes/, hv/, replay/ (not replay/cli), schema/ and the ABI, and only the CLI and gui/ include session/"
  bad=1
done < <(include_lines "$root/session"; include_lines "$root/probes"; include_lines "$root/replay"; include_lines "$root/schema")

if [ -n "$kvmtrace_links" ]; then
  IFS=';' read -ra libs <<< "$kvmtrace_links"
  for lib in "${libs[@]}"; do
    case "$lib" in
      es_probe_abi | hv_arch | es_warnings | '$<LINK_ONLY:es_warnings>' | '') ;;
      *)
        echo "layering: es_kvmtrace links \"$lib\": it may link only es_probe_abi and hv_arch"
        bad=1
        ;;
    esac
  done
fi
if [ -n "$kvm_links" ]; then
  IFS=';' read -ra libs <<< "$kvm_links"
  for lib in "${libs[@]}"; do
    case "$lib" in
      es_import | *'<LINK_ONLY:es_import>'*)
        echo "layering: es_kvm links es_import: live KVM must not depend on replay/import"
        bad=1
        ;;
    esac
  done
fi

# no_replay_link TARGET LINKS: TARGET (a probes/ library) links no library of replay/.
no_replay_link() {
  local target=$1 lib
  [ -n "$2" ] || return 0
  IFS=';' read -ra libs <<< "$2"
  for lib in "${libs[@]}"; do
    case "$lib" in
      es_replay | es_import | es_export | es_check | es_check_live | es_diff | \
      *'<LINK_ONLY:es_replay>'* | *'<LINK_ONLY:es_import>'* | *'<LINK_ONLY:es_export>'* | \
      *'<LINK_ONLY:es_check>'* | *'<LINK_ONLY:es_check_live>'* | *'<LINK_ONLY:es_diff>'*)
        echo "layering: $target links \"$lib\": probes/ may not link a replay/ library (the caller passes replay's steps in)"
        bad=1
        ;;
    esac
  done
}
no_replay_link es_recorder "$recorder_links"
no_replay_link es_plugins "$plugins_links"

if [ "$checked" -eq 0 ]; then
  echo "layering: no #include found under $root/kvmtrace or $root/probes: wrong root?"
  exit 1
fi
[ "$bad" -eq 0 ] && echo "layering: $checked includes of kvmtrace/, hv/ and probes/ checked, none runs upward"
exit "$bad"
