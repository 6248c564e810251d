// Used by tmp_cleanup_test.cpp: writes a file through tests/support/tmp.h, prints its
// directory, then passes or fails. Its tests are disabled so CTest never runs them itself.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "tests/support/tmp.h"

namespace {

void write_big_file() {
  const std::string p = es::test::process_tmp("big.bin");
  std::ofstream out(p, std::ios::binary);
  const std::string mib(1 << 20, 'x');
  for (int i = 0; i < 8; ++i) out << mib;  // 8 MiB, like a large test recording
  std::printf("tmpdir=%s\n", es::test::process_tmp_dir().c_str());
  std::fflush(stdout);
}

TEST(TmpHelper, DISABLED_Passes) { write_big_file(); }

TEST(TmpHelper, DISABLED_Fails) {
  write_big_file();
  ADD_FAILURE() << "failing on purpose";
}

}  // namespace
