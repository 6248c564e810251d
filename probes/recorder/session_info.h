// What a recording's caller tells the recorder at the start (SessionStart: the start fields of
// the sessions row, which schema/session_row.h writes) and the helpers that fill it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "schema/result.h"

namespace es::recorder {

enum class Source { Hv, Kvm, Import };
const char* to_string(Source s);  // "hv", "kvm", "import"

struct SessionStart {
  Source source = Source::Hv;
  std::string scenario;      // scenario name, '' if none
  std::string guest_path;    // guest image as given by the user, '' if none
  std::string guest_hash;    // "sha256:<hex>" (see hash_file), '' if none
  std::string policy;        // reinjection policy name
  std::string tool_version;  // defaults to the project version when empty
  std::string host;          // uname summary; filled by Recorder::open when empty
  std::string kernel;        // uname release; filled by Recorder::open when empty
  std::string command_line;  // argv joined with spaces
  std::string config_json = "{}";
  std::chrono::system_clock::time_point started_at = std::chrono::system_clock::now();
};

struct RunEnd {
  uint32_t end_reason = 0;      // ES_END_*
  std::string detail;           // one line: why the run ended
  uint64_t source_dropped = 0;  // records the source lost before the recorder (e.g. ring buffer)
};

// "sha256:<64 hex>" of a file's contents; error names the file.
Result<std::string> hash_file(const std::string& path);
// SHA-256 of a byte string as 64 lowercase hex digits.
std::string sha256_hex(const void* data, size_t size);
// uname(2): {"Linux host 6.1.0 #1 SMP ... x86_64", "6.1.0"}.
std::pair<std::string, std::string> host_and_kernel();
// ISO 8601 UTC, second precision.
std::string iso8601_utc(std::chrono::system_clock::time_point t);
// argv joined with single spaces, arguments containing spaces quoted.
std::string join_command_line(int argc, const char* const* argv);
// A JSON string's contents for `s` (quotes, backslashes and control characters escaped), for
// the sessions' config_json (imports, live KVM recordings).
std::string json_escape(std::string_view s);

}  // namespace es::recorder
