// Runs the built `exitscope` binary as a user would and keeps what it printed, stdout and
// stderr apart. Needs ES_EXITSCOPE_BIN and ES_TEST_TMPDIR defined by the test target.
// Files are per process: CTest runs test cases as parallel processes.
#pragma once

#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/support/tmp.h"

namespace es::test {

struct CliRun {
  int code = -1;    // exit code; 128 + signal number if it was killed
  std::string out;  // stdout
  std::string err;  // stderr
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `exitscope ARGS` (ARGS as a shell would split them), with the environment's assignments
// `env` ("NAME=VALUE ...", none if empty) added.
inline CliRun run_cli_env(const std::string& env, const std::string& args) {
  const std::string out = process_tmp("cli.out"), err = process_tmp("cli.err");
  const std::string cmd = (env.empty() ? std::string() : "env " + env + " ") + "'" + ES_EXITSCOPE_BIN + "' " + args +
                          " >'" + out + "' 2>'" + err + "'";
  const int status = std::system(cmd.c_str());
  CliRun r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

// `exitscope ARGS` (ARGS as a shell would split them).
inline CliRun run_cli(const std::string& args) { return run_cli_env({}, args); }

inline size_t count_lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace es::test
