#include "probes/kvm/live_stats.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "hv/arch/exit_reason.h"
#include "hv/arch/svm.h"

namespace es::kvm {

namespace {

// The tracepoint a context record came from (its ES_CONTEXT_* reason, probes/kvm's decoder).
const char* context_name(uint32_t reason) {
  switch (reason) {
    case ES_CONTEXT_PAGE_FAULT: return "kvm_page_fault";
    case ES_CONTEXT_EMULATE_INSN: return "kvm_emulate_insn";
    case ES_CONTEXT_PIO: return "kvm_pio";
    case ES_CONTEXT_MSR: return "kvm_msr";
    case ES_CONTEXT_APIC_ACCEPT_IRQ: return "kvm_apic_accept_irq";
    case ES_CONTEXT_EOI: return "kvm_eoi";
    case ES_CONTEXT_MMIO: return "kvm_mmio";
    case ES_CONTEXT_USERSPACE_EXIT: return "kvm_userspace_exit";
    default: return "other";
  }
}

std::string reason_name(uint32_t reason, uint32_t svm) {
  if (svm) {
    const std::string_view n = arch::svm_exit_name(reason);
    return n.empty() ? "svm exit code " + std::to_string(reason) : std::string(n);
  }
  // The basic reason [15:0] (SDM Vol. 3C 28.2.1 "Basic VM-Exit Information"); bit 31 = failed VM entry.
  const std::string_view n = arch::exit_reason_name(static_cast<uint16_t>(reason & 0xFFFF));
  std::string s = n.empty() ? "reason " + std::to_string(reason & 0xFFFF) : std::string(n);
  if (reason & 0x80000000u) s += " (entry failed)";
  return s;
}

std::string mean_text(const uint64_t total, const uint64_t timed) {
  if (!timed) return "-";
  char b[32];
  const uint64_t m = total / timed;
  std::snprintf(b, sizeof b, "%llu.%03lluus", static_cast<unsigned long long>(m / 1000),
                static_cast<unsigned long long>(m % 1000));
  return b;
}

}  // namespace

void LiveStats::add(const es_record* records, size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < n; ++i) {
    const es_record& r = records[i];
    const uint32_t slot_base = (static_cast<uint32_t>(r.vcpu) << 9) | (static_cast<uint32_t>(r.level) << 1);
    switch (r.kind) {
      case ES_KIND_VM_EXIT:
      case ES_KIND_NESTED_EXIT: {
        const bool nested = r.kind == ES_KIND_NESTED_EXIT;
        const Key k = key(nested ? 1 : 0, r.level, r.flags & ES_FLAG_SVM, r.reason);
        ++rows_[k].count;
        pending_[slot_base | (nested ? 1u : 0u)] = {k, r.time_ns, true};
        break;
      }
      case ES_KIND_VM_ENTRY:
      case ES_KIND_NESTED_ENTRY: {
        auto it = pending_.find(slot_base | (r.kind == ES_KIND_NESTED_ENTRY ? 1u : 0u));
        if (it == pending_.end() || !it->second.valid) break;
        if (r.time_ns >= it->second.time_ns) {
          Row& row = rows_[it->second.key];
          ++row.timed;
          row.total_ns += r.time_ns - it->second.time_ns;
        }
        it->second.valid = false;
        break;
      }
      case ES_KIND_CONTEXT: ++rows_[key(2, 0, 0, r.reason)].count; break;
      case ES_KIND_DECISION:
        // kvm_inj_virq / kvm_inj_exception: a new injection, or a reinjection from IDT-vectoring
        // info (the tracepoint's `reinjected`).
        if (r.reason == ES_DECISION_INJECT_NEW || r.reason == ES_DECISION_INJECT_REINJECTED)
          ++rows_[key(3, r.level, 0, r.reason)].count;
        break;
      default: break;
    }
  }
}

std::string LiveStats::table(uint64_t now_ns, uint64_t elapsed_ns, bool whole_session) {
  struct Line {
    std::string name, level;
    uint64_t count, delta;
    std::string mean;
    uint64_t order = 0;  // the key: a stable order among equal counts
  };
  std::vector<Line> lines;
  uint64_t total = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [k, row] : rows_) {
      const uint64_t group = (k >> 32) & 3, level = (k >> 34) & 0xFF, svm = (k >> 42) & 1;
      const auto reason = static_cast<uint32_t>(k);
      Line l;
      l.name = group == 2   ? context_name(reason)
               : group == 3 ? (reason == ES_DECISION_INJECT_NEW ? "injection" : "reinjection")
                            : reason_name(reason, svm) + (group == 1 ? " (nested)" : "");
      l.level = group == 2 ? "-" : "L" + std::to_string(level);
      l.order = k;
      l.count = row.count;
      l.delta = whole_session ? row.count : row.count - row.shown;
      l.mean = group >= 2 ? "-" : mean_text(row.total_ns, row.timed);
      row.shown = row.count;
      total += row.count;
      lines.push_back(std::move(l));
    }
  }
  const double secs = whole_session       ? static_cast<double>(elapsed_ns) / 1e9
                      : now_ns > last_ns_ ? static_cast<double>(now_ns - last_ns_) / 1e9
                                          : 0;
  last_ns_ = now_ns;
  // Busiest first over the last interval, then by total, as kvm_stat orders its rows.
  std::stable_sort(lines.begin(), lines.end(), [](const Line& a, const Line& b) {
    if (a.delta != b.delta) return a.delta > b.delta;
    return a.count != b.count ? a.count > b.count : a.order < b.order;
  });
  std::string out;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%.1f s recorded, %llu records decoded\n", static_cast<double>(elapsed_ns) / 1e9,
                static_cast<unsigned long long>(total));
  out += buf;
  std::snprintf(buf, sizeof buf, "  %-32s %-5s %10s %10s %12s\n", "EVENT", "LEVEL", "COUNT", "RATE/s", "MEAN TIME");
  out += buf;
  if (lines.empty()) out += "  (nothing yet)\n";
  for (const Line& l : lines) {
    std::snprintf(buf, sizeof buf, "  %-32.32s %-5s %10llu %10.0f %12s\n", l.name.c_str(), l.level.c_str(),
                  static_cast<unsigned long long>(l.count), secs > 0 ? static_cast<double>(l.delta) / secs : 0.0,
                  l.mean.c_str());
    out += buf;
  }
  return out;
}

}  // namespace es::kvm
