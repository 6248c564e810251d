// The KVM tracepoint field table and its mapping to events live in kvmtrace/fields.h (one for
// trace.dat, "[FAILED TO PARSE]" text and live eBPF records); the importer's readers use them by
// their short names.
#pragma once

#include "kvmtrace/fields.h"
#include "replay/import/trace_text.h"

namespace es::import {

using kvmtrace::exit_format_of;
using kvmtrace::Field;
using kvmtrace::field_by_name;
using kvmtrace::fill_from_fields;
using kvmtrace::fIntrInfo;
using kvmtrace::fIsa;
using kvmtrace::fReinjected;
using kvmtrace::kFieldCount;
using kvmtrace::kFieldNames;
using kvmtrace::kIsaSvm;

}  // namespace es::import
