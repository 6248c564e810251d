#include "probes/recorder/session_info.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <vector>

namespace es::recorder {

const char* to_string(Source s) {
  switch (s) {
    case Source::Hv: return "hv";
    case Source::Kvm: return "kvm";
    case Source::Import: return "import";
  }
  return "hv";
}

namespace {

// SHA-256 (FIPS 180-4) from OpenSSL's libcrypto, through its EVP interface: the same digest the
// hand-written one gave (tests pin the FIPS 180-2 vectors), at the speed of sha256sum (it used
// 16 % of an import's instructions, for a hash that names the input file).
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { ok_ = ctx_ && EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) == 1; }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* p, size_t n) { ok_ = ok_ && EVP_DigestUpdate(ctx_, p, n) == 1; }
  // 64 lowercase hex digits; "" if libcrypto failed (it does not, short of running out of memory).
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!ok_ || EVP_DigestFinal_ex(ctx_, md, &len) != 1 || len != 32) return {};
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out(2 * len, '0');
    for (unsigned i = 0; i < len; ++i) {
      out[2 * i] = kDigits[md[i] >> 4];
      out[2 * i + 1] = kDigits[md[i] & 15];
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
  bool ok_ = false;
};

}  // namespace

std::string sha256_hex(const void* data, size_t size) {
  Sha256 h;
  h.update(data, size);
  return h.hex();
}

Result<std::string> hash_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error("cannot read guest image '" + path + "'; check the path and its permissions.");
  Sha256 h;
  std::vector<char> buf(1 << 20);
  bool failed = false;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n > 0) {
      h.update(buf.data(), static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    failed = n < 0;
    break;
  }
  ::close(fd);
  if (failed) return make_error("error while reading guest image '" + path + "'.");
  std::string hex = h.hex();
  if (hex.empty()) return make_error("cannot compute the SHA-256 of '" + path + "' (libcrypto failed).");
  return "sha256:" + hex;
}

std::pair<std::string, std::string> host_and_kernel() {
  struct utsname u {};
  if (uname(&u) != 0) return {"unknown", "unknown"};
  std::string host = std::string(u.sysname) + " " + u.nodename + " " + u.release + " " + u.version + " " + u.machine;
  return {host, u.release};
}

std::string iso8601_utc(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string join_command_line(int argc, const char* const* argv) {
  std::string out;
  for (int i = 0; i < argc; ++i) {
    if (i) out += ' ';
    const std::string a = argv[i] ? argv[i] : "";
    if (a.find_first_of(" \t'\"") != std::string::npos || a.empty()) {
      out += '\'';
      for (char c : a) {
        if (c == '\'')
          out += "'\\''";
        else
          out += c;
      }
      out += '\'';
    } else {
      out += a;
    }
  }
  return out;
}

std::string json_escape(std::string_view s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\')
      o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(c));
      o += b;
    } else
      o += c;
  }
  return o;
}

}  // namespace es::recorder
