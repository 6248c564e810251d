// replay's chains, handed to the recorder (probes/recorder/record_steps.h): every row written
// goes to a ChainBuilder on the writer thread, and the recorder's finish writes the chains
// table from it, or rebuilds it by reading the recording back
// (materialize_chains) when rows came out of id order. The recorder never includes replay/;
// whoever opens a recording passes this in (issue #19):
//   Recorder::open(path, info, force, {.steps = es::replay::chain_steps()})
#pragma once

#include "probes/recorder/record_steps.h"

namespace es::replay {

recorder::RecordStepsFactory chain_steps();

}  // namespace es::replay
