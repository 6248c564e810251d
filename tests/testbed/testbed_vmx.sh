#!/bin/bash
# The VMX half of the real-KVM test bed: Debian's own kernel (linux-image-amd64, unpacked, never
# installed) booted under Bochs with an emulated VMX CPU (cpu: model=corei7_skylake_x: EPT,
# unrestricted guest) loads kvm_intel and runs tb-kvm-guest's scenarios under `exitscope record
# --kvm`, and tb-pm-guest's nested VMX scenario (an L1 hypervisor of ours running an L2), while a
# tracefs instance records the same events (inner.sh, as on SVM); check.sh
# --vendor vmx then compares them on the host. QEMU's TCG has no VMX, hence Bochs.
#
#   testbed_vmx.sh --exitscope BIN --guest TB_KVM_GUEST --pm-guest TB_PM_GUEST --cache DIR [--attach "auto tp_btf"]
#                  [--scenarios "..."] [--all] [--ips N] [--megs N] [--append "KERNEL ARGS"]
#
# Runs as testbed.sh: every scenario with the first --attach method, pio, npf and nested with the others
# (--all: every scenario with every method). Bochs has no 9p: the initramfs carries exitscope
# (stripped, with the shared libraries ldd names), and the results come back on COM2
# (init_bochs). Kept under DIR: the kernel package (DIR/deb, shared with testbed.sh, whose
# unpacked kernel is used when it is there), DIR/vmx (the kernel's part this machine needs when
# testbed.sh has not unpacked it, initramfs, CD image, Bochs config) and DIR/vmx-out (console,
# log, runs).
# Exit 0: every check passed; 1: a check failed; 77: this machine cannot run it (the sentence
# says why; CTest shows it as skipped).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
es="" guest="" pm_guest="" cache="" attach="auto tp_btf" scenarios="pio mmio irq irq-npf npf triple nested" all=0
# Bochs's instructions per emulated second: the kernel's timer fires every ips/HZ instructions,
# so a high figure spends less of the emulation on timer interrupts (BENCHMARKS.md).
ips=200000000 megs=512 append=""
while [ $# -gt 0 ]; do
  case "$1" in
    --exitscope) es=$2; shift 2 ;;
    --guest) guest=$2; shift 2 ;;
    --pm-guest) pm_guest=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    --attach) attach=$2; shift 2 ;;
    --scenarios) scenarios=$2; shift 2 ;;
    --all) all=1; shift ;;
    --ips) ips=$2; shift 2 ;;
    --megs) megs=$2; shift 2 ;;
    --append) append=$2; shift 2 ;;  # more kernel arguments (e.g. initcall_debug, for BENCHMARKS.md)
    *) echo "testbed_vmx: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ -x "$es" ] && [ -x "$guest" ] && [ -x "$pm_guest" ] && [ -n "$cache" ] || {
  echo "testbed_vmx: give --exitscope BIN, --guest TB_KVM_GUEST, --pm-guest TB_PM_GUEST and --cache DIR (built binaries)" >&2; exit 2; }
es=$(readlink -f "$es"); guest=$(readlink -f "$guest"); pm_guest=$(readlink -f "$pm_guest")
skip() { echo "testbed_vmx: SKIPPED: $*"; exit 77; }

command -v bochs >/dev/null || skip "bochs is not installed (packages bochs, bochsbios, vgabios; './run testbed --vmx' installs them)"
[ -f /usr/share/bochs/BIOS-bochs-latest ] || skip "the Bochs BIOS is missing (package bochsbios)"
[ -f /usr/share/vgabios/vgabios.bin ] || skip "the VGA BIOS is missing (package vgabios)"
isolinux=/usr/lib/ISOLINUX/isolinux.bin ldlinux=/usr/lib/syslinux/modules/bios/ldlinux.c32
[ -f $isolinux ] && [ -f $ldlinux ] || skip "isolinux is missing (packages isolinux, syslinux-common)"
command -v genisoimage >/dev/null || skip "genisoimage is not installed (package genisoimage)"
busybox=/bin/busybox
{ [ -x $busybox ] && ! ldd $busybox >/dev/null 2>&1; } || skip "no static /bin/busybox (package busybox-static)"
command -v cpio >/dev/null || skip "cpio is not installed (package cpio)"

mkdir -p "$cache"; cache=$(readlink -f "$cache")
# The kernel: the same package as testbed.sh (DIR/deb) and its unpacked files (DIR/kernel) when
# it has unpacked them; otherwise only what this machine loads, into DIR/vmx/kernel (DIR/kernel
# is testbed.sh's: it takes a kernel there as complete).
kdir=$cache/kernel
ls "$kdir"/boot/vmlinuz-* "$kdir"/lib/modules/*/kernel/arch/x86/kvm/kvm-intel.ko >/dev/null 2>&1 || kdir=$cache/vmx/kernel
if ! ls "$kdir"/boot/vmlinuz-* "$kdir"/lib/modules/*/kernel/arch/x86/kvm/kvm-intel.ko >/dev/null 2>&1; then
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
  [ -n "$pkg" ] || skip "apt does not know linux-image-amd64 (run 'apt-get update' first)"
  mkdir -p "$cache/deb"
  if ! ls "$cache/deb/${pkg}"_*.deb >/dev/null 2>&1; then
    echo "testbed_vmx: downloading $pkg (about 70 MB, once)"
    (cd "$cache/deb" && apt-get download -q "$pkg" >/dev/null 2>"$cache/deb/download.log") ||
      skip "could not download $pkg with apt-get download (no network for apt?): $(tail -n 1 "$cache/deb/download.log")"
  fi
  rm -rf "$kdir.tmp"; mkdir -p "$kdir.tmp"
  dpkg-deb --fsys-tarfile "$cache/deb/${pkg}"_*.deb |
    tar -x -C "$kdir.tmp" --wildcards './boot/vmlinuz-*' './lib/modules/*/kernel/arch/x86/kvm/*' \
        './lib/modules/*/kernel/virt/lib/*' ||
    skip "could not unpack the kernel package in $cache/deb"
  rm -rf "$kdir"; mv "$kdir.tmp" "$kdir"
fi
kver=$(ls "$kdir/lib/modules")
vmlinuz=$kdir/boot/vmlinuz-$kver

# The runs, as testbed.sh picks them.
runs="" first=${attach%% *}
for att in $attach; do
  for s in $scenarios; do
    if [ "$att" = "$first" ] || [ "$all" = 1 ] || [ "$s" = pio ] || [ "$s" = npf ] || [ "$s" = nested ]; then runs="$runs $s.$att"; fi
  done
done
runs=${runs# }
tracepoints="kvm_exit kvm_entry kvm_inj_virq kvm_inj_exception kvm_nested_vmexit kvm_nested_vmexit_inject
  kvm_nested_intr_vmexit kvm_nested_vmenter kvm_page_fault kvm_emulate_insn kvm_pio kvm_mmio kvm_msr kvm_userspace_exit
  kvm_apic_accept_irq kvm_eoi"
tracepoints=$(echo $tracepoints)

# The initramfs (uncompressed: Bochs would spend longer in the kernel's gunzip than isolinux
# spends reading the bigger file; lz4 -l, 30 MB -> 13 MB, saved nothing either: BENCHMARKS.md): static busybox, the three modules, bash, exitscope and the
# libraries it links, the guest program, inner.sh and its config.
v=$cache/vmx; r=$v/initramfs
rm -rf "$r" "$v/iso"; mkdir -p "$r"/{bin,usr/bin,proc,sys,dev,tmp,root,lib/modules,tb/out} "$v/iso/isolinux"
cp $busybox "$r/bin/busybox"; cp "$here/init_bochs" "$r/init"; chmod +x "$r/init"
order=(irqbypass kvm kvm-intel)
for m in "${order[@]}"; do
  f=$(find "$kdir/lib/modules" -name "$m.ko")
  [ -n "$f" ] || skip "the kernel package has no module $m.ko"
  cp "$f" "$r/lib/modules/"
done
printf '%s\n' "${order[@]}" > "$r/modules.order"
with_libs() {  # BINARY DEST: the binary and every library ldd names, at the same paths
  mkdir -p "$r/$(dirname "$2")"; cp -L "$1" "$r/$2"
  ldd "$1" | grep -oE '/[^ ]+' | while read -r l; do mkdir -p "$r/$(dirname "$l")"; cp -Ln "$l" "$r/$l"; done
}
with_libs /bin/bash /bin/bash
with_libs "$es" /tb/exitscope
strip "$r/tb/exitscope" 2>/dev/null
cp "$guest" "$r/tb/tb-kvm-guest"; cp "$pm_guest" "$r/tb/tb-pm-guest"; cp "$here/inner.sh" "$r/tb/inner.sh"
printf 'ES=%q\nGUEST=%q\nPM_GUEST=%q\nRUNS=%q\nTRACEPOINTS=%q\nSTATS=1\n' /tb/exitscope /tb/tb-kvm-guest /tb/tb-pm-guest "$runs" \
  "$tracepoints" > "$r/tb/out/config"
(cd "$r" && find . | cpio -o -H newc 2>/dev/null) > "$v/iso/isolinux/initrd.img"
cp "$vmlinuz" "$v/iso/isolinux/vmlinuz"; cp $isolinux $ldlinux "$v/iso/isolinux/"
# quiet and no hardware the test does not use: no KASLR, no speculation mitigations (their
# boot-time patching and checks), the TSC trusted (no watchdog against the emulated HPET), no
# ACPI (interpreting Bochs's tables cost 0.85 s of the kernel's uptime; the legacy serial ports,
# MP table and PCI probing do without it, and poweroff, which then only halts, is not waited
# for) and no crypto self-tests (0.22 s): 15 s of Bochs's CPU time together (BENCHMARKS.md).
# earlyprintk: the decompressor says on COM1 when it starts ("KASLR disabled", nokaslr),
# which the progress lines time: BIOS + isolinux before it, decompression + kernel after (BENCHMARKS.md).
cat > "$v/iso/isolinux/isolinux.cfg" <<CFG
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  INITRD initrd.img
  APPEND console=ttyS0,115200 earlyprintk=serial,ttyS0,115200 quiet panic=-1 nokaslr mitigations=off tsc=reliable acpi=off cryptomgr.notests $append
CFG
genisoimage -quiet -o "$v/boot.iso" -b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot \
  -boot-load-size 4 -boot-info-table -J -R "$v/iso" || skip "genisoimage could not build the CD image"

out=$cache/vmx-out; rm -rf "$out"; mkdir -p "$out"
sed -e "s|@IPS@|$ips|; s|@MEGS@|$megs|; s|@ISO@|$v/boot.iso|; s|@CONSOLE@|$out/console.txt|" \
    -e "s|@RESULTS@|$out/com2.txt|; s|@LOG@|$out/bochs.log|" "$here/bochsrc.in" > "$v/bochsrc"
echo c > "$v/bochs.rc"
echo "testbed_vmx: booting $kver under Bochs (cpu corei7_skylake_x, ips $ips); runs (scenario.attach): $runs"
start=$(date +%s)
# Bochs is stopped once the results' end marker is on COM2 (without ACPI the machine's poweroff
# only halts it), or after 30 minutes (about 4 on an idle machine; 15 were not enough for all seven runs
# when six builds shared the 2 cores).
limit=1800
timeout $limit bochs -q -f "$v/bochsrc" -rc "$v/bochs.rc" > "$out/bochs-stdout.txt" 2>&1 < /dev/null &
bochs_pid=$!
# Stopped (CTest's timeout, Ctrl-C): Bochs goes too.
trap 'kill $bochs_pid 2>/dev/null; exit 1' INT TERM
# The host's clock beside each line of init_bochs / inner.sh as it appears on the console (the
# machine's own uptime runs at Bochs's emulated pace): where the wall time goes (BENCHMARKS.md).
# Bochs's own CPU seconds too: on a shared machine they, not the wall time, say what a run costs.
seen=0 hz=$(getconf CLK_TCK)
progress() {
  local text lines cpu p
  # Whole lines only: the last one may still be arriving.
  text=$(cat "$out/console.txt" 2>/dev/null; echo x); text=${text%x}
  if [ "${text: -1}" != $'\n' ]; then case "$text" in *$'\n'*) text=${text%$'\n'*} ;; *) text="" ;; esac; fi
  lines=$(echo "$text" | tr -d '\r' | grep -oE '^(tb-init|inner):.*|^KASLR disabled')
  [ -n "$lines" ] || return 0
  p=$(pgrep -P $bochs_pid | head -n 1)
  cpu=$( [ -n "$p" ] && awk -v hz="$hz" '{printf ", Bochs CPU %d s", ($14 + $15) / hz}' /proc/$p/stat 2>/dev/null)
  echo "$lines" | tail -n +$((seen + 1)) | while IFS= read -r l; do echo "[$(( $(date +%s) - start )) s$cpu] $l"; done
  seen=$(echo "$lines" | grep -c .)
}
while kill -0 $bochs_pid 2>/dev/null; do
  progress
  grep -q '^=====tb-out-end=====' "$out/com2.txt" 2>/dev/null && { sleep 1; kill $bochs_pid 2>/dev/null; break; }
  sleep 1
done
wait $bochs_pid 2>/dev/null
rc=$?
progress
echo "testbed_vmx: Bochs ran $(( $(date +%s) - start )) s; console: $out/console.txt"
[ $rc = 124 ] && echo "testbed_vmx: Bochs was stopped after $limit s: the machine had not sent its results"
sed -n '/^=====tb-out-begin=====/,/^=====tb-out-end=====/p' "$out/com2.txt" 2>/dev/null | grep -v '^=====' |
  tr -d '\r' | base64 -d 2>/dev/null | tar -xzf - -C "$out" 2>/dev/null
[ -f "$out/env.txt" ] || { echo "testbed_vmx: FAILED: no results came back from the machine (see $out/console.txt, $out/bochs.log)"; exit 1; }
grep -q '^dev-kvm yes' "$out/env.txt" ||
  skip "KVM did not come up inside Bochs: $(grep -m3 -iE 'kvm|vmx' "$out/console.txt" | tr -d '\r' | tr '\n' ' ')"
exec "$here/check.sh" --vendor vmx --exitscope "$es" --out "$out" --runs "$runs" --tracepoints "$tracepoints" --stats
