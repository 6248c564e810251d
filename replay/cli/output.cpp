#include "replay/cli/output.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

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

Result<uint64_t> check_input_file(const std::string& path, const std::string& input_noun, uint64_t max_size) {
  struct stat st {};
  // stat, not open: opening a FIFO for reading blocks until a writer appears.
  if (::stat(path.c_str(), &st) != 0)
    return make_error("cannot read " + input_noun + " '" + path + "': " + std::strerror(errno) + "; check the path.");
  const char* what = S_ISDIR(st.st_mode)    ? "a directory"
                     : S_ISFIFO(st.st_mode) ? "a FIFO (named pipe)"
                     : S_ISCHR(st.st_mode)  ? "a character device"
                     : S_ISBLK(st.st_mode)  ? "a block device"
                     : S_ISSOCK(st.st_mode) ? "a socket"
                     : S_ISREG(st.st_mode)  ? nullptr
                                            : "not a regular file";
  if (S_ISDIR(st.st_mode)) return make_error(input_noun + " '" + path + "' is a directory; pass the file itself.");
  if (what)
    return make_error(input_noun + " '" + path + "' is " + what +
                      ", which exitscope does not read; save its contents to a regular file and pass that.");
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size > max_size)
    return make_error(input_noun + " '" + path + "' is " + std::to_string(size >> 20) + " MiB, more than the " +
                      std::to_string(max_size >> 20) + " MiB exitscope reads as a " + input_noun +
                      "; check that it is the right file.");
  return size;
}

}  // namespace es::cli
