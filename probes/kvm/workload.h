// The processes around a live KVM recording (probes/kvm/kvm_record.h): the invoking user behind
// sudo, the privilege drop once the probes are attached, and the workload of `-- CMD ARGS`,
// forked at once and held until the probes are attached.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "schema/result.h"

namespace es::kvm {

// The invoking user when run through sudo: the recording and the workload are theirs.
struct SudoUser {
  bool present = false;
  uid_t uid = 0;
  gid_t gid = 0;
};
// SUDO_UID / SUDO_GID when running as root through sudo; not present otherwise.
SudoUser sudo_user();

// Drops to `u` for good (groups, gid, then uid). Error: errno text.
Result<void> drop_to(const SudoUser& u);

// Lets this process leave SCHED_IDLE again after dropping root: an unprivileged thread may go
// back to SCHED_OTHER only at a nice value RLIMIT_NICE allows (sched(7)); 20 allows nice 0 and
// nothing higher. Called as root, before drop_to().
void allow_return_from_idle();

// The workload of `-- CMD ARGS`: forked at once, held on a pipe until the probes are attached.
class Workload {
 public:
  Workload() = default;
  ~Workload();  // a workload still running is killed (SIGKILL) and reaped
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;
  // Forks the command; the child waits for release(), drops to `user`, then execs `argv`.
  Result<void> start(const std::vector<std::string>& argv, const SudoUser& user);
  // Lets the command run.
  void release();
  pid_t pid() const { return pid_; }
  // True once it has exited; `status` = its exit code (128 + signal).
  bool exited(int& status);

 private:
  pid_t pid_ = -1;
  int release_fd_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

}  // namespace es::kvm
