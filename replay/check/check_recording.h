// The invariant checker over a recording (offline), and the violations the live checker
// stored in it (ES_KIND_VIOLATION records).
#pragma once

#include <vector>

#include "replay/check/checker.h"
#include "replay/recording.h"
#include "schema/result.h"

namespace es::check {

// Feeds every event of the recording in id order, then finishes. ES_KIND_VIOLATION records
// already in the recording are not input (the result is the same with or without them).
Result<std::vector<Violation>> check_recording(replay::Recording& rec, const CheckOptions& options = {});

// The ES_KIND_VIOLATION records of the recording, as Violations (rule, chain, events,
// count, level, vcpu, time; the explanation is the rule's description).
Result<std::vector<Violation>> recorded_violations(replay::Recording& rec);

}  // namespace es::check
