// One recording of a real KVM host through eBPF (probes/kvm/kvm_record.h): the session adds
// what the recording mechanics take from above them (replay's chain steps) and hands back the
// typed result; the caller's observer says what happens meanwhile. Prints nothing.
#pragma once

#include "probes/kvm/kvm_record.h"
#include "schema/result.h"

namespace es::session {

// The settings of a live KVM recording, as RecordOptions documents them; `steps` is the
// session's to set.
using KvmRequest = kvm::RecordOptions;

Result<kvm::RecordResult> record_kvm(KvmRequest request, kvm::RecordObserver& observer);

}  // namespace es::session
