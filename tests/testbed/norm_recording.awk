# tests/testbed/check.sh: `exitscope events` lines -> normalized events (see check.sh);
# -v vendor=vmx as in norm_ftrace.awk.
function val(key,   i) { for (i = 1; i <= NF; i++) if (index($i, key "=") == 1) return substr($i, length(key) + 2); return "" }
function hex(s) { sub(/^0x0*/, "", s); return "0x" (s == "" ? "0" : tolower(s)) }
{
  kind = $5
  if (kind == "VM_EXIT") {
    reason = ""; for (i = 6; i <= NF && $i !~ /=/; i++) reason = reason (reason == "" ? "" : " ") $i
    q = val("qual"); info1 = (q == "" ? "-" : hex(q))
    i2 = val("gpa"); if (i2 == "") i2 = val("exitinfo2"); info2 = (i2 == "" ? "-" : hex(i2))
    vec = "-"
    if (match($0, /vectoring=[^=]* (gpa|rip|exitinfo2)=/)) {
      vec = substr($0, RSTART + 10, RLENGTH - 10); sub(/ [a-z0-9]+=$/, "", vec)
    }
    if (vendor == "vmx") {  # -v vendor=vmx: as norm_ftrace.awk, the exit interruption info too
      intr = "-"
      if (match($0, /intr=[^=]* (vectoring|gpa|rip)=/)) { intr = substr($0, RSTART + 5, RLENGTH - 5); sub(/ [a-z0-9]+=$/, "", intr) }
      printf "exit %s rip=%s info1=%s info2=- vec=%s intr=%s\n", reason, hex(val("rip")), info1, vec, intr
      if ($3 ~ /^L2/) printf "l2 %s rip=%s\n", reason, hex(val("rip"))  # kvm_nested_vmexit
      next
    }
    printf "exit %s rip=%s info1=%s info2=%s vec=%s\n", reason, hex(val("rip")), info1, info2, vec
    if ($3 ~ /^L2/) printf "l2 %s rip=%s\n", reason, hex(val("rip"))  # kvm_nested_vmexit
  } else if (kind == "NESTED_EXIT") {
    reason = ""; for (i = 6; i <= NF && $i !~ /=/; i++) reason = reason (reason == "" ? "" : " ") $i
    vec = "-"
    if (match($0, /vectoring=[^=]* (gpa|rip|exitinfo2)=/)) {
      vec = substr($0, RSTART + 10, RLENGTH - 10); sub(/ [a-z0-9]+=$/, "", vec)
    }
    if (vendor == "vmx") {
      intr = "-"
      if (match($0, /intr=[^=]* (vectoring|gpa|rip|cause)=/)) { intr = substr($0, RSTART + 5, RLENGTH - 5); sub(/ [a-z0-9]+=$/, "", intr) }
      printf "reflect %s vec=%s intr=%s\n", reason, vec, intr
      next
    }
    printf "reflect %s vec=%s\n", reason, vec
  } else if (kind == "NESTED_ENTRY") {
    inj = "-"
    if (match($0, /inject=[^=]* rip=/)) { inj = substr($0, RSTART + 7, RLENGTH - 7); sub(/ rip=$/, "", inj) }
    printf "vmrun rip=%s inj=%s\n", hex(val("rip")), inj
  } else if (kind == "VM_ENTRY") {
    printf "entry rip=%s imm=%d\n", hex(val("rip")), ($0 ~ /immediate-exit/)
  } else if (kind == "DECISION" && $6 ~ /^INJECT_/) {
    ev = $7; if (ev == "IRQ") ev = ev " " hex($8)
    printf "inj %s reinj=%d\n", ev, ($6 == "INJECT_REINJECTED")
  } else if (kind == "CONTEXT") {
    tp = $6
    if (tp == "kvm_pio") printf "pio %s %s %s %s\n", $7, hex(val("port")), hex(val("val")), val("size")
    else if (tp == "kvm_page_fault") printf "pf %s %s\n", hex(val("addr")), hex(val("err"))
    else if (tp == "kvm_userspace_exit") printf "uexit %s\n", $7
    else if (tp == "kvm_emulate_insn") printf "emul %s\n", hex(val("rip"))
    else if (tp == "kvm_mmio") printf "mmio %s %s %s %s\n", $7, hex(val("gpa")), hex(val("val")), val("len")
    else printf "other %s\n", tp
  }
}
