// Fuzzes the x86-64 instruction decoder of the CPU model (hv/cpu/decoder.h): guest code is
// untrusted (a user can run their own guest). Besides sanitizer reports, checks the
// decoder's contract: a decoded instruction is 1..15 bytes and never longer than the bytes
// it was given; a truncated one is reported as Truncated, not read past the end.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "hv/cpu/decoder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Exactly `size` bytes in their own allocation, so ASan sees any read past `avail`.
  const std::vector<uint8_t> bytes(data, data + size);
  for (unsigned avail = 0; avail <= size && avail <= 16; ++avail) {
    const es::hv::DecodedInsn d = es::hv::decode(bytes.data(), avail);
    if (d.status == es::hv::DecodedInsn::Status::Ok) {
      if (d.len == 0 || d.len > 15 || d.len > avail) __builtin_trap();
      if (d.opsize != 1 && d.opsize != 2 && d.opsize != 4 && d.opsize != 8) __builtin_trap();
      if (d.has_modrm && (d.reg > 15 || (d.mod == 3 && d.rm > 15))) __builtin_trap();
    }
  }
  return 0;
}
