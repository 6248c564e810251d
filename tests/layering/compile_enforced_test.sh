#!/usr/bin/env bash
# The compiler's half of the layering (cmake/layers.cmake): a target's include path shows only
# the folders of what it links. Two one-line sources are compiled with es_kvmtrace's real
# flags (targets layering_probe_allowed and layering_probe_upward, tests/layering/CMakeLists.txt):
# one includes kvmtrace/ and hv/arch/ (which es_kvmtrace links) and must compile; the other
# includes replay/chains.h (above kvmtrace/) and must fail because the header is not found.
# Usage: compile_enforced_test.sh BUILD
set -u
build=${1:?usage: compile_enforced_test.sh BUILD}
out=$(cmake --build "$build" --target layering_probe_allowed 2>&1) || {
  echo "$out"
  echo "FAIL: a kvmtrace/ source including kvmtrace/event.h and hv/arch/event_info.h did not compile"
  exit 1
}
if out=$(cmake --build "$build" --target layering_probe_upward 2>&1); then
  echo "$out"
  echo "FAIL: a kvmtrace/ source including replay/chains.h compiled: es_kvmtrace's include path shows replay/"
  exit 1
fi
if ! grep -q 'replay/chains.h' <<< "$out" || ! grep -qiE 'no such file|file not found' <<< "$out"; then
  echo "$out"
  echo "FAIL: the upward include failed for another reason than a header not found"
  exit 1
fi
echo "ok: es_kvmtrace's flags compile kvmtrace/ and hv/arch/ includes and do not find replay/chains.h"
