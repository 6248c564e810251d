// `record --kvm --stats` on the real kernel with es-kvm-guest: the per-reason table kept from the
// records the recorder decodes. Expected counts come from what the guest did (it prints every OUT
// and IN it made, and runs one UD2 per loop that KVM's emulator turns into an injected #UD) and
// from the recording itself (SQL-free: replay's event reader). This machine's KVM may never fire
// kvm_exit (no VT-x / SVM exit tracing under nested virtualization): there the exit rows are
// absent and only the context events (kvm_pio, kvm_userspace_exit, kvm_emulate_insn) and the
// injections are checked; the test bed (tests/testbed, SVM KVM under QEMU) shows exit rows with
// their mean exit-to-entry time.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <sstream>
#include <string>

#include "exitscope/record.h"
#include "replay/recording.h"
#include "tests/kvm/kvm_test_support.h"
#include "tests/support/cli_run.h"

namespace {

using es::test::run_cli;
using es::test::kvm::refused_by_machine;
using KvmLiveStats = es::test::kvm::KvmFixture;

// Rows of the final table: "  NAME LEVEL COUNT RATE MEAN" -> NAME (words before LEVEL) -> count.
std::map<std::string, uint64_t> final_table(const std::string& out) {
  std::map<std::string, uint64_t> rows;
  const size_t at = out.find("KVM events by reason, whole session");
  if (at == std::string::npos) return rows;
  std::istringstream in(out.substr(at));
  std::string line;
  std::getline(in, line);  // title
  std::getline(in, line);  // header
  while (std::getline(in, line) && line.rfind("  ", 0) == 0) {
    std::istringstream w(line);
    std::vector<std::string> words;
    for (std::string s; w >> s;) words.push_back(s);
    if (words.size() < 5) continue;
    std::string name;
    for (size_t i = 0; i + 4 < words.size(); ++i) name += (name.empty() ? "" : " ") + words[i];
    rows[name + " " + words[words.size() - 4]] = std::stoull(words[words.size() - 3]);
  }
  return rows;
}

// A shell command (not exitscope itself), its output kept.
es::test::CliRun run_shell(const std::string& cmd) {
  const std::string out = es::test::process_tmp("shell.out"), err = es::test::process_tmp("shell.err");
  const int status = std::system((cmd + " >'" + out + "' 2>'" + err + "' </dev/null").c_str());
  es::test::CliRun r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  r.out = es::test::slurp(out);
  r.err = es::test::slurp(err);
  return r;
}

size_t count_of(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

// Off a terminal (a pipe here): no live redraw, one table at the end whose counts are the
// recording's: kvm_pio = the guest's OUTs and INs, one injection per loop (#UD), and every VM exit
// reason (where kvm_exit fires) as many times as the recording has it.
TEST_F(KvmLiveStats, OffATerminalOneTableWithTheRecordingsCounts) {
  constexpr unsigned kLoops = 5;
  const std::string out = db("live.db");
  const auto r =
      run_cli("record --kvm --stats -o '" + out + "' -- '" + ES_KVM_GUEST_BIN + "' --loops " + std::to_string(kLoops));
  if (refused_by_machine(r)) GTEST_SKIP() << "the kernel refused: " << r.err;
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(count_of(r.out, "KVM events by reason, whole session"), 1u) << r.out;
  EXPECT_EQ(r.err.find("\x1b["), std::string::npos) << "no terminal: nothing redrawn\n" << r.err;
  const auto rows = final_table(r.out);
  // The guest: kLoops x (OUT, IN), then a final OUT (tests/kvm/kvm_guest.asm).
  EXPECT_EQ(rows.count("kvm_pio -") ? rows.at("kvm_pio -") : 0, 2 * kLoops + 1) << r.out;
  uint64_t injections = 0;
  for (const auto& [k, n] : rows)
    if (k.rfind("injection ", 0) == 0) injections += n;
  EXPECT_EQ(injections, kLoops) << "one #UD per UD2 (KVM's emulator injects it)\n" << r.out;

  auto rec = es::replay::Recording::open(out);
  ASSERT_TRUE(rec) << rec.error();
  std::map<std::string, uint64_t> exits_by_level;  // "L1" -> VM exits in the recording
  uint64_t userspace_exits = 0;
  auto all = es::replay::query_events(rec->db(), "1", {}, [&](const es::replay::Event& e) {
    if (e.rec.kind == ES_KIND_VM_EXIT) ++exits_by_level["L" + std::to_string(e.rec.level)];
    if (e.rec.kind == ES_KIND_CONTEXT && e.rec.reason == ES_CONTEXT_USERSPACE_EXIT) ++userspace_exits;
    return true;
  });
  ASSERT_TRUE(all) << all.error();
  EXPECT_EQ(rows.count("kvm_userspace_exit -") ? rows.at("kvm_userspace_exit -") : 0, userspace_exits) << r.out;
  std::map<std::string, uint64_t> table_exits;
  for (const auto& [k, n] : rows)
    if (k.size() > 3 && k[k.size() - 3] == ' ' && k[k.size() - 2] == 'L' && k.find(" (nested)") == std::string::npos &&
        k.rfind("injection ", 0) != 0 && k.rfind("reinjection ", 0) != 0)
      table_exits[k.substr(k.size() - 2)] += n;
  EXPECT_EQ(table_exits, exits_by_level) << r.out;
}

// On a terminal (a pty from script(1)): the table is redrawn in place once a second (cursor up,
// clear to the end), with the guest's kvm_pio events in it before the run ends, then the whole session's table once. --max-lag 0: decoded at normal priority, so the
// live table is not behind on a loaded machine.
TEST_F(KvmLiveStats, OnATerminalTheTableIsRedrawnEverySecond) {
  if (::access("/usr/bin/script", X_OK) != 0) GTEST_SKIP() << "script(1) is not installed (util-linux)";
  const std::string out = db("live_tty.db");
  // Quiet for 1.2 s (a first table with nothing), a guest, then 1.5 s more: the tables at 2 and
  // 3 s have its events.
  const std::string cmd = std::string(ES_EXITSCOPE_BIN) + " record --kvm --stats --max-lag 0 -o '" + out +
                          "' -- sh -c 'sleep 1.2; " + ES_KVM_GUEST_BIN + " --loops 5000 --quiet; sleep 1.5'";
  const auto r = run_shell("script -qfec \"" + cmd + "\" /dev/null");
  if (r.out.find("refused to load") != std::string::npos || r.out.find("no kvm tracepoints") != std::string::npos)
    GTEST_SKIP() << "the kernel refused: " << r.out;
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const size_t final_at = r.out.find("KVM events by reason, whole session");
  ASSERT_NE(final_at, std::string::npos) << r.out;
  EXPECT_EQ(count_of(r.out, "KVM events by reason, whole session"), 1u) << r.out;
  const std::string live = r.out.substr(0, final_at);
  EXPECT_GE(count_of(live, "RATE/s"), 2u) << "at least two live tables\n" << live;
  EXPECT_GE(count_of(live, "A\x1b[J"), 1u) << "the live table is redrawn in place\n" << live;
  EXPECT_NE(live.find("kvm_pio"), std::string::npos) << "the guest's port I/O shows while recording\n" << live;
}
