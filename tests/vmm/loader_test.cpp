// Guest images a user passes with --guest: flat binaries and ELF64, and the clear refusals.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "hv/vmm/guest_abi.h"
#include "hv/vmm/loader.h"
#include "tests/vmm/record_log.h"

namespace es::test {
namespace {

// A minimal ELF64 ET_EXEC with one PT_LOAD segment holding `code` at `paddr`.
std::vector<uint8_t> make_elf(std::span<const uint8_t> code, uint64_t paddr, uint64_t entry) {
  std::vector<uint8_t> f(0x78 + code.size(), 0);
  auto put = [&](size_t off, auto v) { std::memcpy(f.data() + off, &v, sizeof v); };
  const uint8_t ident[16] = {0x7F, 'E', 'L', 'F', 2, 1, 1, 0};
  std::memcpy(f.data(), ident, 16);
  put(16, uint16_t{2});   // ET_EXEC
  put(18, uint16_t{62});  // EM_X86_64
  put(20, uint32_t{1});
  put(24, entry);
  put(32, uint64_t{0x40});  // e_phoff
  put(52, uint16_t{64});    // e_ehsize
  put(54, uint16_t{56});    // e_phentsize
  put(56, uint16_t{1});     // e_phnum
  put(0x40, uint32_t{1});   // PT_LOAD
  put(0x44, uint32_t{7});
  put(0x48, uint64_t{0x78});  // p_offset
  put(0x50, paddr);           // p_vaddr
  put(0x58, paddr);           // p_paddr
  put(0x60, uint64_t{code.size()});
  put(0x68, uint64_t{code.size() + 0x1000});  // p_memsz: .bss after the code
  std::memcpy(f.data() + 0x78, code.data(), code.size());
  return f;
}

TEST(GuestLoaderTest, Elf64GuestRunsLikeTheFlatBinary) {
  const hv::Scenario* s = hv::find_scenario("irq-ept-reinject");
  ASSERT_NE(s, nullptr);
  const auto elf = make_elf(s->guest, hv::guest_abi::kImageBase, hv::guest_abi::kImageBase);
  const RecordLog flat = run_guest(s->guest, s->config);
  const RecordLog viaelf = run_guest(elf, s->config);
  EXPECT_EQ(viaelf.result.end_reason, static_cast<uint32_t>(ES_END_GUEST_EXIT)) << viaelf.result.message;
  EXPECT_EQ(viaelf.result.console, flat.result.console);
  EXPECT_EQ(viaelf.records.size(), flat.records.size());
}

struct BadImage {
  const char* what;
  std::vector<uint8_t> bytes;
  const char* expect;  // part of the one-sentence error
};

TEST(GuestLoaderTest, BadImagesAreRefusedWithOneClearSentence) {
  const std::vector<uint8_t> code(64, 0x90);
  auto truncated = make_elf(code, hv::guest_abi::kImageBase, hv::guest_abi::kImageBase);
  truncated.resize(40);
  auto outside = make_elf(code, 0x2000000, 0x2000000);
  auto not_x86 = make_elf(code, hv::guest_abi::kImageBase, hv::guest_abi::kImageBase);
  not_x86[18] = 40;  // EM_ARM
  auto bad_entry = make_elf(code, hv::guest_abi::kImageBase, 0x500000);
  std::vector<BadImage> cases = {
      {"empty", {}, "empty"},
      {"truncated ELF", truncated, "truncated"},
      {"segment outside RAM", outside, "outside guest RAM"},
      {"not x86-64", not_x86, "not an x86-64 executable"},
      {"entry outside segments", bad_entry, "entry point"},
      {"flat binary too large", std::vector<uint8_t>(8u << 20, 0x90), "7 MiB"},
  };
  for (const auto& c : cases) {
    hv::HostMemory mem(64ull << 20);
    hv::LoadedImage img;
    std::string error;
    EXPECT_FALSE(hv::load_guest_image(c.bytes, mem, 16ull << 20, img, error)) << c.what;
    EXPECT_NE(error.find(c.expect), std::string::npos) << c.what << ": '" << error << "'";
    EXPECT_EQ(error.find('\n'), std::string::npos) << c.what;
  }
}

// A guest that executes an instruction the model does not implement: the run ends with an
// internal-error record naming the bytes and RIP; nothing is skipped silently.
TEST(GuestLoaderTest, UnimplementedInstructionEndsTheRunWithItsBytes) {
  // fld1 (D9 E8): x87 is not part of the modelled subset.
  const std::vector<uint8_t> code = {0x90, 0xD9, 0xE8, 0xF4};
  const RecordLog log = run_guest(code, hv::VmmConfig{});
  EXPECT_EQ(log.result.end_reason, static_cast<uint32_t>(ES_END_INTERNAL_ERROR));
  const auto errs = log.of_kind(ES_KIND_INTERNAL_ERROR);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].reason, static_cast<uint32_t>(ES_ERROR_UNIMPLEMENTED_INSN));
  EXPECT_EQ(errs[0].rip, hv::guest_abi::kImageBase + 1);
  EXPECT_EQ(errs[0].bytes[0], 0xD9);
  EXPECT_EQ(errs[0].bytes[1], 0xE8);
}

}  // namespace
}  // namespace es::test
