// Where an output goes, decided before anything is written (issue #17, RELIABILITY.md
// "Files from strangers"): what the path names once symlinks are followed, whether it is one
// of the command's own inputs, and whether a recording in progress is using it.
//
// The rules every writer follows:
//   - only a regular file is ever replaced (by rename or unlink); a device, FIFO or terminal
//     is written as a stream where the format allows it, and refused otherwise;
//   - a symlink is followed: the file it names is replaced, the link stays;
//   - an output that is one of the inputs (same device and inode: a hard link, a ../ path or a
//     symlink is the same file) is refused;
//   - a recording being written holds an exclusive flock(2) on its file until the recorder is
//     done with it; another exitscope refuses to replace a locked file and names the holder.
#pragma once

#include <string>
#include <string_view>

#include "schema/result.h"

namespace es::recorder {

enum class OutputKind {
  Missing,  // nothing there yet: created as a regular file
  Regular,  // a regular file (possibly reached through symlinks): replaced by rename
  Stream,   // a character device, FIFO or a /proc fd link: opened and written in order
};

struct OutputTarget {
  std::string path;  // what to open / rename over: the given path, or the file a symlink names
  OutputKind kind = OutputKind::Missing;
  std::string what;  // for a Stream: "a character device", "a FIFO", ...; empty otherwise
};

// Looks at `path` without opening it (a FIFO would block). Refused in one sentence: a
// directory, a block device, a socket, a dangling symlink or a symlink loop.
Result<OutputTarget> inspect_output(const std::string& path);

// True when `a` and `b` both exist and are the same file (st_dev and st_ino, symlinks followed).
bool same_file(const std::string& a, const std::string& b);

// If another open file description holds a flock on `path` (a recording in progress), a
// description of the holder: "process 1234 (exitscope)" (from /proc/locks and /proc/PID/comm),
// or "another process" when the holder cannot be named. Empty when the file is not locked or
// is not a regular file.
std::string lock_holder(const std::string& path);

// The refusal for writing a recording (a SQLite file) to a Stream output: `what` is OutputTarget::what.
std::string stream_refusal(const std::string& path, const std::string& what);

// The refusal for replacing a recording still being written by `holder` (lock_holder()).
std::string in_progress_sentence(const std::string& path, const std::string& holder);

// An exclusive flock on a file this process creates for a recording. Released on destruction
// (closing the descriptor). Move-only.
class RecordingLock {
 public:
  RecordingLock() = default;
  // Creates `path` (O_EXCL: it must not exist; symlinks are not followed) and locks it.
  static Result<RecordingLock> create(const std::string& path);
  RecordingLock(RecordingLock&& o) noexcept;
  RecordingLock& operator=(RecordingLock&& o) noexcept;
  RecordingLock(const RecordingLock&) = delete;
  RecordingLock& operator=(const RecordingLock&) = delete;
  ~RecordingLock();

 private:
  explicit RecordingLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace es::recorder
