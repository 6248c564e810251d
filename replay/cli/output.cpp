#include "replay/cli/output.h"

#include "probes/recorder/output_file.h"

namespace es::cli {

Result<OutputPlan> plan_output(const std::string& output, const std::vector<std::string>& inputs, bool recording,
                               const std::string& input_noun) {
  auto target = recorder::inspect_output(output);
  if (!target) return make_error(target.error());
  // By device and inode, not by name: a hard link, a ../ path or a symlink to the input is the input.
  for (const std::string& in : inputs)
    if (recorder::same_file(output, in))
      return make_error("'" + output + "' is the " + input_noun + " itself ('" + in +
                        "', the same file); writing it would destroy the input: choose another output name.");
  OutputPlan plan;
  plan.path = target->path;
  if (target->kind == recorder::OutputKind::Stream) {
    if (recording) return make_error(recorder::stream_refusal(output, target->what));
    plan.stream = true;
    return plan;
  }
  if (target->kind == recorder::OutputKind::Regular)
    if (const std::string holder = recorder::lock_holder(target->path); !holder.empty())
      return make_error(recorder::in_progress_sentence(target->path, holder));
  return plan;
}

}  // namespace es::cli
