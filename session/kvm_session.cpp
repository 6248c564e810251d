#include "session/kvm_session.h"

#include <utility>

#include "replay/chain_steps.h"

namespace es::session {

Result<kvm::RecordResult> record_kvm(KvmRequest request, kvm::RecordObserver& observer) {
  // The chains are linked beside the writing, as for every other source (replay/chain_steps.h).
  request.steps = replay::chain_steps();
  return kvm::record_kvm(request, observer);
}

}  // namespace es::session
