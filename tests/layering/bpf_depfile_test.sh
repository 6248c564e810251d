#!/usr/bin/env bash
# A BPF object is rebuilt under Ninja when a header it includes changes (cmake/bpf.cmake, issue
# #19: IMPLICIT_DEPENDS is honoured by Makefiles only, so Ninja kept a stale .bpf.o after
# record.h changed). A small project in a temporary directory builds one BPF program through
# es_bpf_skeleton against a copy of the ABI headers; touching the copy of exitscope/record.h
# must rebuild the object and its skeleton, and a second build must then have nothing to do.
# Usage: bpf_depfile_test.sh ROOT   (exit 77: skipped, no clang / bpftool / libbpf)
set -u
root=${1:?usage: bpf_depfile_test.sh ROOT}
for tool in cmake ninja clang; do
  command -v $tool >/dev/null || {
    echo "bpf_depfile_test: $tool not found: skipped"
    exit 77
  }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src/probes/include"
cp -r "$root/probes/include/exitscope" "$tmp/src/probes/include/"
cat > "$tmp/src/CMakeLists.txt" << EOF
cmake_minimum_required(VERSION 3.25)
project(bpf_depfile LANGUAGES C)
find_package(PkgConfig REQUIRED)
include($root/cmake/bpf.cmake)
es_bpf_skeleton(TARGET probe_skel SOURCE probe.bpf.c NAME probe_bpf)
add_custom_target(everything ALL DEPENDS probe_skel_gen)
EOF
cat > "$tmp/src/probe.bpf.c" << 'EOF'
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "exitscope/record.h"
char LICENSE[] SEC("license") = "GPL";
volatile __u32 record_size = sizeof(struct es_record);
SEC("tracepoint/syscalls/sys_enter_getpid")
int probe(void* ctx) {
  (void)ctx;
  return 0;
}
EOF
# The toolchain is asked before configuring: a configure that fails with it present is a
# failure of cmake/bpf.cmake, not a reason to skip (its log names libbpf even when it succeeds).
if ! PATH="$PATH:/usr/sbin:/sbin" command -v bpftool > /dev/null || ! pkg-config --exists libbpf; then
  echo "bpf_depfile_test: no BPF toolchain (bpftool, libbpf): skipped"
  exit 77
fi
if ! cmake -S "$tmp/src" -B "$tmp/build" -G Ninja > "$tmp/configure.log" 2>&1; then
  cat "$tmp/configure.log"
  echo "FAIL: the probe project did not configure"
  exit 1
fi
build() { ninja -C "$tmp/build" 2>&1; }
out=$(build) || {
  echo "$out"
  echo "FAIL: the first build failed"
  exit 1
}
out=$(build)
grep -q "no work to do" <<< "$out" || {
  echo "$out"
  echo "FAIL: a second build with nothing changed did work"
  exit 1
}
sleep 1 # a newer mtime than the object's on any file system
touch "$tmp/src/probes/include/exitscope/record.h"
out=$(build)
echo "$out"
if ! grep -q "BPF probe.bpf.c" <<< "$out"; then
  echo "FAIL: exitscope/record.h changed and probe.bpf.o was not rebuilt (is the depfile gone from cmake/bpf.cmake?)"
  exit 1
fi
grep -q "bpftool skeleton probe.skel.h" <<< "$out" || {
  echo "FAIL: the object was rebuilt but not its skeleton"
  exit 1
}
out=$(build)
grep -q "no work to do" <<< "$out" || {
  echo "$out"
  echo "FAIL: the build after the rebuild still had work to do"
  exit 1
}
echo "ok: touching exitscope/record.h rebuilt probe.bpf.o and probe.skel.h, and nothing after"
