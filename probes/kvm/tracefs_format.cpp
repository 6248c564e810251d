#include "probes/kvm/tracefs_format.h"

#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

namespace es::kvm {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool parse_uint(std::string_view s, uint32_t& out) {
  s = trim(s);
  if (s.empty() || s.size() > 9) return false;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  out = v;
  return true;
}

// "key:value" of one ';'-separated part of a field line.
bool part_value(std::string_view part, std::string_view key, std::string_view& value) {
  part = trim(part);
  if (part.size() <= key.size() || part.substr(0, key.size()) != key || part[key.size()] != ':') return false;
  value = trim(part.substr(key.size() + 1));
  return true;
}

// One logical field the decoder reads: its names across kernel eras, whether the event is
// useless without it, and the sizes it may have.
struct FieldSpec {
  Slot slot;
  std::string_view name, alt;  // alt: the name in another era ("" if none)
  bool required;
  bool array = false;  // a byte array (kvm_emulate_insn's insn)
};

// What each event needs, by era (arch/x86/kvm/trace.h):
std::vector<FieldSpec> specs_of(int event) {
  switch (event) {
    case ES_KVM_EV_EXIT:
      // TRACE_EVENT_KVM_EXIT: exit_reason, guest_rip, isa, info1, info2 for every era we
      // decode; intr_info / error_code since 5.10 (before: info2 = VM-exit interruption info on
      // VMX, vmx_get_exit_info()); vcpu_id since 5.7.
      return {{kVcpu, "vcpu_id", "", false},       {kReason, "exit_reason", "", true},
              {kRip, "guest_rip", "", true},       {kIsa, "isa", "", true},
              {kInfo1, "info1", "", true},         {kInfo2, "info2", "", true},
              {kIntrInfo, "intr_info", "", false}, {kErrorCode, "error_code", "", false}};
    case ES_KVM_EV_NESTED_VMEXIT:
      // 6.10+ uses kvm_exit's layout; before, rip / exit_code / exit_info1/2 / exit_int_info(_err)
      // (on VMX exit_info2 = IDT-vectoring info, exit_int_info = VM-exit interruption info,
      // nested_vmx_reflect_vmexit()).
      return {{kVcpu, "vcpu_id", "", false},
              {kReason, "exit_reason", "exit_code", true},
              {kRip, "guest_rip", "rip", true},
              {kIsa, "isa", "", true},
              {kInfo1, "info1", "exit_info1", true},
              {kInfo2, "info2", "exit_info2", true},
              {kIntrInfo, "intr_info", "exit_int_info", false},
              {kErrorCode, "error_code", "exit_int_info_err", false}};
    case ES_KVM_EV_NESTED_VMEXIT_INJECT:
      // vmcs12's exit fields as reflected to L1 (nested_vmx_vmexit(): info2 = IDT-vectoring).
      return {{kReason, "exit_code", "", true},
              {kInfo1, "exit_info1", "", true},
              {kInfo2, "exit_info2", "", true},
              {kIntrInfo, "exit_int_info", "", true},
              {kErrorCode, "exit_int_info_err", "", true},
              {kIsa, "isa", "", true}};
    case ES_KVM_EV_NESTED_INTR_VMEXIT: return {{kRip, "rip", "", true}};
    case ES_KVM_EV_ENTRY:
      return {{kVcpu, "vcpu_id", "", true},
              {kRip, "rip", "", false},
              {kImmediateExit, "immediate_exit", "", false},
              {kIntrInfo, "intr_info", "", false},
              {kErrorCode, "error_code", "", false}};
    case ES_KVM_EV_INJ_VIRQ:
      // "irq" before 5.19; then vector, soft, reinjected.
      return {{kVector, "vector", "irq", true}, {kSoft, "soft", "", false}, {kReinjected, "reinjected", "", false}};
    case ES_KVM_EV_INJ_EXCEPTION:
      return {{kException, "exception", "", true},
              {kHasError, "has_error", "", true},
              {kErrorCode, "error_code", "", true},
              {kReinjected, "reinjected", "", false}};
    case ES_KVM_EV_PAGE_FAULT:
      return {{kVcpu, "vcpu_id", "", false},
              {kRip, "guest_rip", "", false},
              {kAddress, "fault_address", "", true},
              {kErrorCode, "error_code", "", true}};
    case ES_KVM_EV_EMULATE_INSN:
      return {{kRip, "rip", "", true},
              {kLen, "len", "", true},
              {kInsn, "insn", "", true, true},
              {kFailed, "failed", "", true}};
    case ES_KVM_EV_PIO:
      return {{kRw, "rw", "", true},
              {kPort, "port", "", true},
              {kSize, "size", "", true},
              {kCount, "count", "", true},
              {kVal, "val", "", false}};
    case ES_KVM_EV_MMIO:
      return {{kType, "type", "", true}, {kLen, "len", "", true}, {kGpa, "gpa", "", true}, {kVal, "val", "", true}};
    case ES_KVM_EV_MSR:
      return {{kWrite, "write", "", true},
              {kEcx, "ecx", "", true},
              {kData, "data", "", true},
              {kException, "exception", "", true}};
    case ES_KVM_EV_USERSPACE_EXIT: return {{kReason, "reason", "", true}, {kErrno, "errno", "", true}};
    case ES_KVM_EV_APIC_ACCEPT_IRQ:
      return {
          {kApicid, "apicid", "", true}, {kDm, "dm", "", false}, {kTm, "tm", "", false}, {kVector, "vec", "", true}};
    case ES_KVM_EV_EOI: return {{kApicid, "apicid", "", true}, {kVector, "vector", "", true}};
    case ES_KVM_EV_NESTED_VMENTER:
      // 5.12+ (nSVM and nVMX share it): rip = L1's, vmcb = the VMCB / VMCS12 address, nested_rip =
      // L2's, event_inj = what L1 injects. Before 5.12, SVM's kvm_nested_vmrun has the same fields
      // but isa (and npt for tdp_enabled), so its layout is this one without isa: SVM.
      return {{kRip, "rip", "", true},         {kVmcb, "vmcb", "", true},          {kNestedRip, "nested_rip", "", true},
              {kIntCtl, "int_ctl", "", false}, {kEventInj, "event_inj", "", true}, {kIsa, "isa", "", false}};
    default: return {};
  }
}

}  // namespace

const FormatField* EventFormat::find(std::string_view field) const {
  for (const FormatField& f : fields)
    if (f.name == field) return &f;
  return nullptr;
}

std::string_view older_event_name(int event) { return event == ES_KVM_EV_NESTED_VMENTER ? "kvm_nested_vmrun" : ""; }

int event_index(std::string_view name) {
  for (size_t i = 0; i < kEventNames.size(); ++i)
    if (kEventNames[i] == name || (!name.empty() && older_event_name(static_cast<int>(i)) == name))
      return static_cast<int>(i);
  return -1;
}

Result<EventFormat> parse_format(std::string_view text, std::string_view source) {
  EventFormat fmt;
  const std::string src(source);
  bool have_name = false, have_format = false;
  size_t pos = 0;
  uint32_t line_no = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view line = trim(text.substr(pos, nl - pos));
    pos = nl + 1;
    ++line_no;
    if (line.empty()) continue;
    std::string_view v;
    if (part_value(line, "name", v)) {
      fmt.name = std::string(v);
      have_name = true;
    } else if (part_value(line, "ID", v)) {
      if (!parse_uint(v, fmt.id))
        return Error{"tracefs format '" + src + "' line " + std::to_string(line_no) + ": bad ID"};
    } else if (line == "format:") {
      have_format = true;
    } else if (part_value(line, "print fmt", v)) {
      fmt.print_fmt = std::string(v);
    } else if (line.substr(0, 6) == "field:") {
      // field:TYPE NAME[N];\toffset:N;\tsize:N;\tsigned:N;
      FormatField f;
      std::string_view decl, off, size, sign;
      std::string_view rest = line;
      std::string_view parts[4];
      size_t n = 0;
      while (!rest.empty() && n < 4) {
        const size_t semi = rest.find(';');
        parts[n++] = trim(rest.substr(0, semi));
        if (semi == std::string_view::npos) break;
        rest = rest.substr(semi + 1);
      }
      const std::string where = "tracefs format '" + src + "' line " + std::to_string(line_no);
      if (n < 3 || !part_value(parts[0], "field", decl) || !part_value(parts[1], "offset", off) ||
          !part_value(parts[2], "size", size))
        return Error{where + " is not 'field:TYPE NAME; offset:N; size:N;'"};
      if (!parse_uint(off, f.offset) || !parse_uint(size, f.size))
        return Error{where + ": offset / size are not numbers"};
      if (n >= 4 && part_value(parts[3], "signed", sign)) f.is_signed = trim(sign) == "1";
      // The name is the declaration's last word; "insn[15]" names an array.
      std::string_view d = trim(decl);
      if (const size_t br = d.find('['); br != std::string_view::npos && d.back() == ']') {
        if (!parse_uint(d.substr(br + 1, d.size() - br - 2), f.array_len)) f.array_len = 0;
        d = trim(d.substr(0, br));
      }
      const size_t sp = d.find_last_of(" \t*");
      if (sp == std::string_view::npos || sp + 1 >= d.size()) return Error{where + ": no field name"};
      f.name = std::string(d.substr(sp + 1));
      f.type = std::string(trim(d.substr(0, sp + 1)));
      if (f.name.rfind("common_", 0) == 0) continue;
      fmt.fields.push_back(std::move(f));
    }
  }
  if (!have_name || !have_format)
    return Error{"'" + src + "' is not a tracefs event format file (no 'name:' or 'format:' line)"};
  return fmt;
}

Result<EventLayout> resolve_layout(int event, const EventFormat& fmt, std::string_view kernel_release) {
  const std::string name = event >= 0 && event < ES_KVM_EV_COUNT ? std::string(kEventNames[event]) : "?";
  const std::string head = name + " on kernel " + std::string(kernel_release) + ": ";
  const std::string tail =
      "; exitscope does not know this layout and does not record it (leave the event out "
      "with --events, or report the format file)";
  if (fmt.name != name && (older_event_name(event).empty() || fmt.name != older_event_name(event)))
    return Error{head + "the format file describes '" + fmt.name + "'" + tail};
  EventLayout l;
  l.event = event;
  l.tracepoint = fmt.name;
  for (const FieldSpec& s : specs_of(event)) {
    const FormatField* f = fmt.find(s.name);
    if (!f && !s.alt.empty()) f = fmt.find(s.alt);
    if (!f) {
      if (s.required) return Error{head + "field '" + std::string(s.name) + "' is missing" + tail};
      l.optional_missing.emplace_back(s.name);
      continue;
    }
    const bool scalar_ok = f->array_len == 0 && (f->size == 1 || f->size == 2 || f->size == 4 || f->size == 8);
    const bool array_ok = s.array && f->array_len > 0 && f->size == f->array_len && f->size <= 16;
    if (!(s.array ? array_ok : scalar_ok))
      return Error{head + "field '" + f->name + "' has type '" + f->type + "' of " + std::to_string(f->size) +
                   " bytes" + tail};
    if (f->offset < ES_KVM_RAW_BASE || f->offset + f->size > ES_KVM_RAW_BASE + ES_KVM_RAW_MAX ||
        f->offset % (s.array ? 1 : f->size) != 0)
      return Error{head + "field '" + f->name + "' is at offset " + std::to_string(f->offset) +
                   ", outside the bytes the probe copies" + tail};
    FieldLoc& at = l.at[s.slot];
    at.present = true;
    at.is_signed = f->is_signed;
    at.offset = static_cast<uint16_t>(f->offset - ES_KVM_RAW_BASE);
    at.size = static_cast<uint16_t>(f->size);
  }
  // Copy up to the end of the last field read (never past the entry: the attach would be refused).
  for (const FieldLoc& at : l.at)
    if (at.present) l.copy_len = std::max<uint32_t>(l.copy_len, at.offset + at.size);
  return l;
}

uint64_t read_u64(const es_kvm_event& e, const FieldLoc& f) {
  if (!f.present || f.offset + f.size > ES_KVM_RAW_MAX || f.offset + f.size > e.raw_len) return 0;
  const uint8_t* p = e.raw + f.offset;
  switch (f.size) {
    case 1: return f.is_signed ? static_cast<uint64_t>(static_cast<int64_t>(static_cast<int8_t>(p[0]))) : p[0];
    case 2: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return f.is_signed ? static_cast<uint64_t>(static_cast<int64_t>(static_cast<int16_t>(v))) : v;
    }
    case 4: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return f.is_signed ? static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(v))) : v;
    }
    case 8: {
      uint64_t v;
      std::memcpy(&v, p, 8);
      return v;
    }
    default: return 0;
  }
}

Result<std::string> find_tracefs() {
  struct stat st {};
  for (const char* dir : {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}) {
    const std::string events = std::string(dir) + "/events";
    if (::stat(events.c_str(), &st) == 0) {
      if (::stat((events + "/kvm").c_str(), &st) != 0)
        return Error{"the kernel has no kvm tracepoints (" + events +
                     "/kvm is missing): load KVM (modprobe kvm_intel or kvm_amd) and try again"};
      return std::string(dir);
    }
  }
  if (::mount("nodev", "/sys/kernel/tracing", "tracefs", 0, nullptr) != 0)
    return Error{std::string("tracefs is not mounted and mounting it on /sys/kernel/tracing failed (") +
                 std::strerror(errno) + "); run 'mount -t tracefs nodev /sys/kernel/tracing' as root"};
  if (::stat("/sys/kernel/tracing/events/kvm", &st) != 0)
    return Error{
        "the kernel has no kvm tracepoints (/sys/kernel/tracing/events/kvm is missing): load KVM "
        "(modprobe kvm_intel or kvm_amd) and try again"};
  return std::string("/sys/kernel/tracing");
}

}  // namespace es::kvm
