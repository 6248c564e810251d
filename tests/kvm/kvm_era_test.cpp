// The kernel era from the event formats, one rule for both sources that have formats (issue #15):
// the live recorder reads the running kernel's tracefs `format` files (probes/kvm), the trace.dat
// importer the copies trace-cmd writes into the file (replay/import/trace_dat.cpp). Both feed
// kvmtrace::EraEvidence::note_format(); they used to decide each in its own way and disagreed on
// when kvm_inj_virq got `reinjected` (5.19 vs 6.0: it is 6.0, kvmtrace/era.cpp cites the commits).
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include "probes/kvm/kvm_loader.h"
#include "probes/kvm/kvm_record.h"
#include "probes/kvm/tracefs_format.h"
#include "replay/import/trace_dat.h"
#include "tests/import/kvm_trace_capture.h"
#include "tests/kvm/kvm_test_support.h"

namespace es::test {
namespace {

using es::kvm::Decoder;

// The layouts of this kernel's tracefs formats, as the recorder resolves them before attaching.
Result<Decoder::Layouts> this_kernels_layouts() {
  auto tracefs = es::kvm::find_tracefs();
  if (!tracefs) return Error{tracefs.error()};
  if (::access((*tracefs + "/events/kvm/kvm_exit/format").c_str(), R_OK) != 0)
    return Error{"cannot read the kvm tracepoint formats (needs root)"};
  Decoder::Layouts ls;
  for (int e = 0; e < ES_KVM_EV_COUNT; ++e)
    if (auto l = es::kvm::load_layout(*tracefs, e, "this kernel")) ls[static_cast<size_t>(e)] = *l;
  return ls;
}

// Written from arch/x86/kvm/trace.h's history before the run: a 6.18 kernel's kvm_exit has
// intr_info (5.10), kvm_inj_* have reinjected (6.0) and kvm_entry has intr_info (6.14): "Linux
// 6.14+". The same kernel's formats, read by the recorder from tracefs and by the importer from a
// trace.dat trace-cmd made here, give the same sentence, word for word.
TEST(KvmEraFromFormats, TracefsAndTraceDatOfThisKernelSayTheSameEra_Issue15) {
  auto layouts = this_kernels_layouts();
  if (!layouts) GTEST_SKIP() << layouts.error();
  const std::string live = es::kvm::formats_era(Decoder(*layouts));
  EXPECT_NE(live.find("from the event formats"), std::string::npos) << live;
  EXPECT_EQ(live.find("5.19"), std::string::npos) << live;

  if (const std::string why = capture_skip_reason(); !why.empty()) GTEST_SKIP() << why;
  const std::string dat = process_tmp("era.dat");
  const KvmTraceCapture cap = capture_kvm_trace(ES_KVM_GUEST_BIN, 2, dat);
  if (!cap.skip.empty()) GTEST_SKIP() << cap.skip;
  ASSERT_EQ(cap.error, "");
  auto parsed = import::parse_trace_dat(dat, {});
  ASSERT_TRUE(parsed) << parsed.error();
  const std::string& imported = parsed->stats.era;
  // The importer takes the era from the formats only when no kvm_exit / kvm_entry record said it
  // (this host's KVM runs its guests without VT-x / SVM: none fire here).
  if (imported.find("from the event formats") == std::string::npos)
    GTEST_SKIP() << "kvm_exit / kvm_entry records fired here, so the import's era came from them: " << imported;
  EXPECT_EQ(imported, live);
}

// The 6.18 format files kept in tests/kvm/data (kvm_exit, kvm_entry, kvm_inj_exception) through
// the recorder's layout check: 6.14+ from kvm_entry's intr_info, 6.0+ named for reinjected.
TEST(KvmEraFromFormats, KeptFormatsOf618AreLinux614_Issue15) {
  Decoder::Layouts ls;
  const std::pair<int, const char*> files[] = {{ES_KVM_EV_EXIT, "kvm_exit-6.18.format"},
                                               {ES_KVM_EV_ENTRY, "kvm_entry-6.18.format"},
                                               {ES_KVM_EV_INJ_EXCEPTION, "kvm_inj_exception-6.18.format"}};
  for (const auto& [ev, file] : files) {
    std::ifstream in(std::string(ES_KVM_TEST_DATA) + "/" + file);
    std::stringstream ss;
    ss << in.rdbuf();
    auto fmt = es::kvm::parse_format(ss.str(), file);
    ASSERT_TRUE(fmt) << fmt.error();
    auto l = es::kvm::resolve_layout(ev, *fmt, "6.18");
    ASSERT_TRUE(l) << l.error();
    ls[static_cast<size_t>(ev)] = *l;
  }
  const std::string era = es::kvm::formats_era(Decoder(ls));
  EXPECT_EQ(era.rfind("Linux 6.14+ (from the event formats: ", 0), 0u) << era;
  EXPECT_NE(era.find("kvm_inj_virq / kvm_inj_exception have reinjected (6.0+)"), std::string::npos) << era;
}

}  // namespace
}  // namespace es::test
