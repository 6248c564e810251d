#!/usr/bin/env bash
# check_includes.sh must fail on each kind of upward dependency it is there to catch, and pass
# on a tree without one: a tree is planted in a temporary directory for each case.
set -u
check=${1:?usage: check_includes_self_test.sh PATH/TO/check_includes.sh}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
passed=0

plant() {  # plant DIR: a clean tree, the includes the real layer has
  mkdir -p "$1/kvmtrace" "$1/probes/kvm" "$1/probes/recorder" "$1/probes/bus" "$1/hv/vmm"
  printf '#include "kvmtrace/event.h"\n#include "hv/arch/event_info.h"\n#include "exitscope/record.h"\n' > "$1/kvmtrace/a.h"
  printf '#include "kvmtrace/linker.h"\n#include "probes/kvm/kvm_decode.h"\n#include <vector>\n' > "$1/probes/kvm/b.cpp"
  printf '#include "probes/recorder/record_steps.h"\n#include "schema/sqlite_db.h"\n' > "$1/probes/recorder/c.cpp"
  printf '#include "exitscope/names.h"\n#include "hv/arch/exit_reason.h"\n' > "$1/probes/bus/d.cpp"
  printf '#include "hv/cpu/cpu.h"\n#include "probes/bus/probe_bus.h"\n#include "exitscope/record.h"\n' > "$1/hv/vmm/e.h"
}
expect() {  # expect NAME RC PATTERN OUTPUT-RC OUTPUT
  if [ "$4" -ne "$2" ] || ! grep -qF -- "$3" <<< "$5"; then
    echo "FAIL $1: wanted exit $2 and a line with '$3'; got exit $4:"
    echo "$5"
    fail=$((fail + 1))
  else
    echo "ok   $1"
    passed=$((passed + 1))
  fi
}

plant "$tmp/clean"
out=$("$check" "$tmp/clean" "es_probe_abi;hv_arch;es_warnings" "es_kvmtrace;es_recorder" \
  "es_probe_abi;es_schema;Threads::Threads;\$<LINK_ONLY:es_warnings>" "es_probe_abi;es_schema;hv_arch;dl"); rc=$?
expect "a clean tree passes" 0 "none runs upward" "$rc" "$out"

plant "$tmp/replay"
printf '// up\n#include "replay/chains.h"\n' > "$tmp/replay/kvmtrace/up.h"
out=$("$check" "$tmp/replay"); rc=$?
expect "kvmtrace/ including replay/" 1 'kvmtrace/up.h:2 includes "replay/chains.h"' "$rc" "$out"

plant "$tmp/probes"
printf '  #  include "probes/recorder/recorder.h"\n' > "$tmp/probes/kvmtrace/up.cpp"
out=$("$check" "$tmp/probes"); rc=$?
expect "kvmtrace/ including probes/ (not probes/include)" 1 'includes "probes/recorder/recorder.h"' "$rc" "$out"

plant "$tmp/gui"
printf '#include "gui/main_window.h"\n' > "$tmp/gui/kvmtrace/up.h"
out=$("$check" "$tmp/gui"); rc=$?
expect "kvmtrace/ including gui/" 1 'includes "gui/main_window.h"' "$rc" "$out"

plant "$tmp/import"
printf '#include "replay/import/kvm_linker.h"\n' > "$tmp/import/probes/kvm/up.cpp"
out=$("$check" "$tmp/import"); rc=$?
expect "probes/kvm/ including replay/import" 1 'probes/kvm/up.cpp:1 includes "replay/import/kvm_linker.h"' "$rc" "$out"

plant "$tmp/links"
out=$("$check" "$tmp/links" "es_probe_abi;hv_arch;es_replay" "es_kvmtrace;es_import"); rc=$?
expect "es_kvmtrace linking es_replay" 1 'es_kvmtrace links "es_replay"' "$rc" "$out"
expect "es_kvm linking es_import" 1 'es_kvm links es_import' "$rc" "$out"

plant "$tmp/recorder"
printf '#include "replay/chains.h"\n' >> "$tmp/recorder/probes/recorder/c.cpp"
out=$("$check" "$tmp/recorder"); rc=$?
expect "the recorder including replay/" 1 'probes/recorder/c.cpp:3 includes "replay/chains.h"' "$rc" "$out"

plant "$tmp/bus"
printf '#include "replay/names.h"\n' > "$tmp/bus/probes/bus/plugin_host.cpp"
out=$("$check" "$tmp/bus"); rc=$?
expect "the plugin host including replay/" 1 'probes/bus/plugin_host.cpp:1 includes "replay/names.h"' "$rc" "$out"

plant "$tmp/up_links"
out=$("$check" "$tmp/up_links" "" "" "es_probe_abi;es_schema;es_replay" "es_probe_abi;\$<LINK_ONLY:es_import>"); rc=$?
expect "es_recorder linking es_replay" 1 'es_recorder links "es_replay"' "$rc" "$out"
expect "es_plugins linking es_import" 1 'es_plugins links "$<LINK_ONLY:es_import>"' "$rc" "$out"

plant "$tmp/hv"
printf '#include "probes/recorder/recorder.h"\n' >> "$tmp/hv/hv/vmm/e.h"
out=$("$check" "$tmp/hv"); rc=$?
expect "hv/ including the recorder" 1 'hv/vmm/e.h:4 includes "probes/recorder/recorder.h"' "$rc" "$out"

plant "$tmp/gui_arch"
mkdir -p "$tmp/gui_arch/gui" "$tmp/gui_arch/render"
printf '#include "replay/format.h"\n#include "hv/arch/event_info.h"\n' > "$tmp/gui_arch/gui/f.cpp"
printf '#include "gui/document.h"\n' > "$tmp/gui_arch/render/g.cpp"
out=$("$check" "$tmp/gui_arch"); rc=$?
expect "gui/ decoding with hv/arch" 1 'gui/f.cpp:2 includes "hv/arch/event_info.h"' "$rc" "$out"
expect "render/ including gui/" 1 'render/g.cpp:1 includes "gui/document.h"' "$rc" "$out"

plant "$tmp/session"
mkdir -p "$tmp/session/session" "$tmp/session/replay/cli"
printf '#include "replay/chain_steps.h"\n#include "hv/vmm/machine.h"\n#include "gui/main_window.h"\n' > "$tmp/session/session/s.cpp"
printf '#include "session/hv_session.h"\n' > "$tmp/session/replay/cli/cmd.cpp"
printf '#include "session/config.h"\n' > "$tmp/session/probes/recorder/up.cpp"
out=$("$check" "$tmp/session"); rc=$?
expect "session/ including gui/" 1 'session/s.cpp:3 includes "gui/main_window.h"' "$rc" "$out"
expect "the recorder including session/" 1 'probes/recorder/up.cpp:1 includes "session/config.h"' "$rc" "$out"
grep -qF 'cmd.cpp' <<< "$out" && { echo "FAIL the CLI including session/ was refused"; fail=$((fail + 1)); }

echo "$passed passed, $fail failed"
[ "$fail" -eq 0 ]
