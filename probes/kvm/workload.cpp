#include "probes/kvm/workload.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace es::kvm {

SudoUser sudo_user() {
  SudoUser u;
  const char* su = std::getenv("SUDO_UID");
  const char* sg = std::getenv("SUDO_GID");
  if (!su || !sg || ::geteuid() != 0) return u;
  char* e1 = nullptr;
  char* e2 = nullptr;
  const unsigned long uid = std::strtoul(su, &e1, 10);
  const unsigned long gid = std::strtoul(sg, &e2, 10);
  if (*e1 || *e2 || uid == 0) return u;
  u.present = true;
  u.uid = static_cast<uid_t>(uid);
  u.gid = static_cast<gid_t>(gid);
  return u;
}

Result<void> drop_to(const SudoUser& u) {
  if (!u.present) return {};
  const passwd* pw = ::getpwuid(u.uid);
  if (pw ? ::initgroups(pw->pw_name, u.gid) != 0 : ::setgroups(0, nullptr) != 0)
    return Error{std::string("setting the groups of uid ") + std::to_string(u.uid) +
                 " failed: " + std::strerror(errno)};
  if (::setgid(u.gid) != 0 || ::setuid(u.uid) != 0)
    return Error{std::string("dropping privileges to uid ") + std::to_string(u.uid) +
                 " failed: " + std::strerror(errno)};
  return {};
}

void allow_return_from_idle() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NICE, &rl) != 0 || rl.rlim_cur >= 20) return;
  rl.rlim_cur = 20;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 20) rl.rlim_max = 20;
  (void)::setrlimit(RLIMIT_NICE, &rl);
}

Workload::~Workload() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
  if (release_fd_ >= 0) ::close(release_fd_);
}

Result<void> Workload::start(const std::vector<std::string>& argv, const SudoUser& user) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Error{std::string("pipe: ") + std::strerror(errno)};
  pid_ = ::fork();
  if (pid_ < 0) return Error{std::string("cannot start the command (fork: ") + std::strerror(errno) + ")"};
  if (pid_ == 0) {
    ::close(fds[1]);
    char go = 0;
    if (::read(fds[0], &go, 1) != 1) ::_exit(127);  // the recorder gave up
    if (!drop_to(user)) ::_exit(127);
    std::vector<char*> av;
    for (const std::string& a : argv) av.push_back(const_cast<char*>(a.c_str()));
    av.push_back(nullptr);
    ::execvp(av[0], av.data());
    // The child has no caller to return to: it says why on the terminal it shares.
    std::fprintf(stderr, "exitscope record: cannot run '%s': %s\n", av[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(fds[0]);
  release_fd_ = fds[1];
  return {};
}

void Workload::release() {
  if (release_fd_ < 0) return;
  const char go = 1;
  (void)!::write(release_fd_, &go, 1);
  ::close(release_fd_);
  release_fd_ = -1;
}

bool Workload::exited(int& status) {
  if (pid_ <= 0) return false;
  if (reaped_) {
    status = status_;
    return true;
  }
  int st = 0;
  if (::waitpid(pid_, &st, WNOHANG) != pid_) return false;
  reaped_ = true;
  status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  status = status_;
  return true;
}

}  // namespace es::kvm
