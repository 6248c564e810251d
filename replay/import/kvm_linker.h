// The importer's KVM linker: kvmtrace::Linker (kvmtrace/linker.h), the one every KVM source
// uses, describing what it learnt into the import's ImportStats.
#pragma once

#include <iterator>
#include <utility>

#include "kvmtrace/linker.h"
#include "replay/import/text_import.h"
#include "replay/import/trace_text.h"

namespace es::import {

class KvmEventLinker : public kvmtrace::Linker {
 public:
  // Fills s.vendor, s.era, s.vcpu_map and appends to s.assumptions.
  void describe(ImportStats& s) const {
    kvmtrace::TraceFacts f;
    Linker::describe(f);
    s.vendor = std::move(f.vendor);
    s.era = std::move(f.era);
    s.assumptions.insert(s.assumptions.end(), std::make_move_iterator(f.assumptions.begin()),
                         std::make_move_iterator(f.assumptions.end()));
    s.vcpu_map = std::move(f.vcpu_map);
  }
};

}  // namespace es::import
