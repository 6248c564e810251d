#!/bin/bash
# The real-KVM test bed: Debian's own kernel (linux-image-amd64, unpacked, never installed)
# booted under QEMU TCG with an emulated SVM CPU (-cpu qemu64,+svm,+npt) runs tb-kvm-guest's
# scenarios under `exitscope record --kvm` while a tracefs instance records the same events
# (inner.sh); then this script checks the recordings against ftrace on the host (check.sh).
#
#   testbed.sh --exitscope BIN --guest TB_KVM_GUEST [--pm-guest TB_PM_GUEST] --cache DIR
#              [--attach "auto tp_btf"] [--scenarios "..."] [--all] [--suite SUITE]
#
# --suite SUITE boots another Debian release's kernel instead of the host's (bullseye: Linux
# 5.10, where SVM's L1 VMRUN is the tracepoint kvm_nested_vmrun, renamed kvm_nested_vmenter in
# 5.12). Its package index is fetched into DIR with apt's own options (the host's apt sources and
# state are not touched), the package downloaded with apt-get download, as for the host's.
#
# The protected-mode scenarios "nested" (an SVM L1 hypervisor running an L2, tb_nested_l1.asm)
# and "escalate" (tb_escalate.asm) run TB_PM_GUEST; without --pm-guest they are left out.
#
# Each scenario is recorded with the first --attach method; the others record only pio, npf and
# nested (between them every event a tp_btf program can see here, kvm_nested_vmenter and
# kvm_nested_vmexit_inject included, and kvm_pio's refusal), unless --all
# records every scenario with every method (about twice the time).
#
# Everything downloaded or built is kept under DIR (the kernel package, the unpacked kernel,
# the initramfs), so a second run only boots. Exit 0: every check passed; 1: a check failed;
# 77: this machine cannot run the test bed (the sentence says why; CTest shows it as skipped).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
es="" guest="" pm_guest="" cache="" attach="auto tp_btf" scenarios="pio mmio irq irq-npf npf triple escalate nested" all=0 suite=""
while [ $# -gt 0 ]; do
  case "$1" in
    --exitscope) es=$2; shift 2 ;;
    --guest) guest=$2; shift 2 ;;
    --pm-guest) pm_guest=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    --attach) attach=$2; shift 2 ;;
    --scenarios) scenarios=$2; shift 2 ;;
    --all) all=1; shift ;;
    --suite) suite=$2; shift 2 ;;
    *) echo "testbed: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ -x "$es" ] && [ -x "$guest" ] && [ -n "$cache" ] || {
  echo "testbed: give --exitscope BIN, --guest TB_KVM_GUEST and --cache DIR (built binaries)" >&2; exit 2; }
es=$(readlink -f "$es"); guest=$(readlink -f "$guest")
if [ -n "$pm_guest" ] && [ -x "$pm_guest" ]; then pm_guest=$(readlink -f "$pm_guest")
else
  for pm in escalate nested; do
    case " $scenarios " in *" $pm "*)
      echo "testbed: scenario $pm left out: no --pm-guest TB_PM_GUEST (build target tb-pm-guest)"
      scenarios=$(echo " $scenarios " | sed "s/ $pm / /; s/^ *//; s/ *\$//") ;;
    esac
  done
fi
skip() { echo "testbed: SKIPPED: $*"; exit 77; }

command -v qemu-system-x86_64 >/dev/null ||
  skip "qemu-system-x86_64 is not installed (package qemu-system-x86; './run testbed' installs it)"
busybox=/bin/busybox
{ [ -x $busybox ] && ! ldd $busybox >/dev/null 2>&1; } ||
  skip "no static /bin/busybox for the emulated machine's init (package busybox-static; './run testbed' installs it)"
command -v cpio >/dev/null || skip "cpio is not installed (package cpio)"

mkdir -p "$cache"; cache=$(readlink -f "$cache")
command -v modinfo >/dev/null || skip "modinfo is not installed (package kmod)"
# apt for the kernel package: the host's, or (--suite) a private index of that Debian release
# kept under the cache, signed by the same Debian archive keyring.
apt_opts=()
if [ -n "$suite" ]; then
  a=$cache/apt-$suite
  mkdir -p "$a/lists/partial" "$a/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" > "$a/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$a/sources.list" -o "Dir::Etc::SourceParts=$a/none" -o "Dir::State::Lists=$a/lists"
            -o "Dir::Cache=$a" -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "Debug::NoLocking=1")
  if ! ls "$a/lists/"*_Packages >/dev/null 2>&1; then
    echo "testbed: fetching Debian $suite's package index (once)"
    apt-get "${apt_opts[@]}" update -q >"$a/update.log" 2>&1 ||
      skip "could not fetch Debian $suite's package index (no network for apt?): $(tail -n 1 "$a/update.log")"
  fi
fi
kdir=$cache/kernel${suite:+-$suite}
if ! ls "$kdir"/boot/vmlinuz-* >/dev/null 2>&1; then
  pkg=$(apt-cache "${apt_opts[@]}" depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
  [ -n "$pkg" ] || skip "apt does not know linux-image-amd64${suite:+ in $suite} (run 'apt-get update' first)"
  mkdir -p "$cache/deb"
  if ! ls "$cache/deb/${pkg}"_*.deb >/dev/null 2>&1; then
    echo "testbed: downloading $pkg (about 70 MB, once)"
    (cd "$cache/deb" && apt-get "${apt_opts[@]}" download -q "$pkg" >/dev/null 2>"$cache/deb/download.log") ||
      skip "could not download $pkg with apt-get download (no network for apt?): $(tail -n 1 "$cache/deb/download.log")"
  fi
  # Only the kernel image and the module directories the emulated machine loads from are
  # unpacked (dpkg-deb's data tar, the part dpkg -x unpacks), about 30 MB instead of 400.
  rm -rf "$kdir.tmp"; mkdir -p "$kdir.tmp"
  dpkg-deb --fsys-tarfile "$cache/deb/${pkg}"_*.deb |
    tar -x -C "$kdir.tmp" --wildcards --no-wildcards-match-slash './boot/vmlinuz-*' \
        './lib/modules/*/kernel/arch/x86/kvm/*' './lib/modules/*/kernel/virt/lib/*' \
        './lib/modules/*/kernel/drivers/crypto/ccp/*' './lib/modules/*/kernel/drivers/char/hw_random/*' \
        './lib/modules/*/kernel/drivers/virtio/*' './lib/modules/*/kernel/fs/9p/*' \
        './lib/modules/*/kernel/fs/netfs/*' './lib/modules/*/kernel/fs/fscache/*' './lib/modules/*/kernel/net/9p/*' \
        2>/dev/null
  ls "$kdir.tmp"/boot/vmlinuz-* >/dev/null 2>&1 || skip "could not unpack the kernel package in $cache/deb"
  rm -rf "$kdir"; mv "$kdir.tmp" "$kdir"
fi
kver=$(ls "$kdir/lib/modules")
vmlinuz=$kdir/boot/vmlinuz-$kver

# The initramfs: static busybox, the modules in load order (each after the modules its
# .modinfo "depends" names, which differ between releases: 6.1's 9p needs netfs, 5.10's ccp
# rng-core), and init. Rebuilt when init or this script changes.
order=()
add_module() {  # NAME (a module name: '-' and '_' are the same)
  local m=${1//_/-} f d
  case " ${order[*]} " in *" $m "*) return ;; esac
  f=$(find "$kdir/lib/modules" \( -name "$m.ko" -o -name "${m//-/_}.ko" \) | head -n 1)
  [ -n "$f" ] || skip "the kernel package has no module $m.ko (needed by the emulated machine)"
  for d in $(modinfo -F depends "$f" | tr ',' ' '); do add_module "$d"; done
  order+=("$(basename "$f" .ko)")
}
initrd=$cache/initrd-$kver.gz
if [ ! -f "$initrd" ] || [ "$here/init" -nt "$initrd" ] || [ "$here/testbed.sh" -nt "$initrd" ]; then
  for m in kvm-amd virtio_pci 9pnet_virtio 9p; do add_module $m; done
  r=$cache/initramfs; rm -rf "$r"; mkdir -p "$r"/{bin,proc,sys,dev,lib/modules}
  cp $busybox "$r/bin/busybox"; cp "$here/init" "$r/init"
  for m in "${order[@]}"; do
    cp "$(find "$kdir/lib/modules" -name "$m.ko" | head -n 1)" "$r/lib/modules/"
  done
  printf '%s\n' "${order[@]}" > "$r/modules.order"
  (cd "$r" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$initrd.tmp" && mv "$initrd.tmp" "$initrd"
fi

out=$cache/out${suite:+-$suite}; rm -rf "$out"; mkdir -p "$out"
# The kvm tracepoints `record --kvm` attaches (probes/kvm/kvm.bpf.c); kvm_fpu,
# kvm_update_master_clock and the rest are left out of the tracefs instance too.
tracepoints="kvm_exit kvm_entry kvm_inj_virq kvm_inj_exception kvm_nested_vmexit kvm_nested_vmexit_inject
  kvm_nested_intr_vmexit kvm_nested_vmenter kvm_nested_vmrun kvm_page_fault kvm_emulate_insn kvm_pio kvm_mmio kvm_msr kvm_userspace_exit
  kvm_apic_accept_irq kvm_eoi"
tracepoints=$(echo $tracepoints)
runs=""
first=${attach%% *}
for att in $attach; do
  for s in $scenarios; do
    if [ "$att" = "$first" ] || [ "$all" = 1 ] || [ "$s" = pio ] || [ "$s" = npf ] || [ "$s" = nested ]; then runs="$runs $s.$att"; fi
  done
done
runs=${runs# }
printf 'ES=%q\nGUEST=%q\nPM_GUEST=%q\nRUNS=%q\nTRACEPOINTS=%q\nSTATS=1\nPERF=%d\n' "$es" "$guest" "$pm_guest" "$runs" \
  "$tracepoints" "$([ -z "$suite" ] && echo 1 || echo 0)" > "$out/config"
echo "testbed: booting $kver under QEMU TCG (-cpu qemu64,+svm,+npt); runs (scenario.attach): $runs"
start=$(date +%s)
timeout 420 qemu-system-x86_64 -accel tcg -cpu qemu64,+svm,+npt -smp 1 -m 2048 -nographic -no-reboot \
  -kernel "$vmlinuz" -initrd "$initrd" \
  -append "console=ttyS0 panic=-1 quiet nokaslr tsc=reliable tb_cmd=$here/inner.sh tb_out=$out" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs local,path="$out",mount_tag=tbout,security_model=none,multidevs=remap \
  > "$out/console.txt" 2>&1 < /dev/null
rc=$?
echo "testbed: the emulated machine ran $(( $(date +%s) - start )) s (exit $rc); console: $out/console.txt"
grep -E '^(tb-init|inner):' "$out/console.txt"
# QEMU and the kernel were there: a machine that does not reach the test command is a failure
# of the test bed itself, not a machine that cannot run it.
[ -f "$out/env.txt" ] || { echo "testbed: FAILED: the emulated machine did not start its test command (see $out/console.txt)"; exit 1; }
grep -q '^dev-kvm yes' "$out/env.txt" || skip "KVM did not come up inside the emulated machine: $(grep -m3 -iE 'kvm|svm' "$out/console.txt" | tr '\n' ' ')"
exec "$here/check.sh" --exitscope "$es" --out "$out" --runs "$runs" --tracepoints "$tracepoints" --stats
