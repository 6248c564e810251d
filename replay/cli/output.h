// Where a command's output goes, checked before anything is read or written (issue #17):
// the rules are probes/recorder/output_file.h's; this adds the command's inputs.
#pragma once

#include <string>
#include <vector>

#include "schema/result.h"

namespace es::cli {

struct OutputPlan {
  std::string path;     // the file to write or rename over (a symlink's file), or the stream to open
  bool stream = false;  // a character device, FIFO or /proc fd link: open it and write in order
};

// `output` for a command that reads `inputs`. Refused in one sentence (without the
// "exitscope CMD: " prefix): an output that is one of the inputs (same device and inode), a
// recording another process is still writing, a directory / block device / socket / dangling
// symlink, and, when `recording` (a SQLite file, which cannot be a stream), any stream.
// `input_noun` names the inputs in that sentence ("trace file", "recording", "guest file").
Result<OutputPlan> plan_output(const std::string& output, const std::vector<std::string>& inputs, bool recording,
                               const std::string& input_noun = "input file");

// An input file a command is about to read, checked by type and size before it is opened
// (issue #17): a FIFO or device would block the open or never end, a directory reads as
// garbage, and a file larger than `max_size` bytes would not fit in memory. Returns its size,
// or one sentence (without the "exitscope CMD: " prefix) naming the file and what to do.
Result<uint64_t> check_input_file(const std::string& path, const std::string& input_noun,
                                  uint64_t max_size = ~uint64_t{0});

}  // namespace es::cli
