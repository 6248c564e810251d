// The text import's single pass (issue #18): each line parsed, learned and linked as it is read,
// checked at the end against what the whole file teaches. The two passes (learn every line, then
// link) are the reference: on every text fixture, real pastes and their damaged copies, the
// single pass must give the same records and the same import facts, or fall back to the two
// passes by itself. Crafted texts whose later lines change what earlier ones mean must fall back.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "replay/import/text_import.h"
#include "tests/support/cli_run.h"

namespace es::test {
namespace {

struct Both {
  import::ParsedTrace one, two;
};

Both parse_both(const std::string& text, const std::string& name) {
  import::ImportOptions o;
  auto one = import::parse_trace_text(text, o, name);
  o.two_passes = true;
  auto two = import::parse_trace_text(text, o, name);
  EXPECT_EQ(static_cast<bool>(one), static_cast<bool>(two)) << name;
  if (!one || !two) {
    if (!one && !two) {
      EXPECT_EQ(one.error(), two.error()) << name;
    }
    return {};
  }
  return {std::move(*one), std::move(*two)};
}

// The same records, byte for byte, and the same facts about the import.
void expect_same(const Both& b, const std::string& name) {
  const import::ImportStats &a = b.one.stats, &c = b.two.stats;
  EXPECT_EQ(c.passes, 2u) << name;
  ASSERT_EQ(b.one.records.size(), b.two.records.size()) << name << " (single pass: " << a.passes << ")";
  for (size_t i = 0; i < b.one.records.size(); ++i)
    ASSERT_EQ(0, std::memcmp(&b.one.records[i], &b.two.records[i], sizeof(es_record)))
        << name << ": record " << i + 1 << " differs (single pass: " << a.passes << ")";
  EXPECT_EQ(a.records, c.records) << name;
  // Every other fact the import reports (format, line and event counts, unparsed lines, vendor,
  // era, assumptions, what was skipped and repaired, the vCPU map) is in the session's JSON.
  EXPECT_EQ(b.one.config_json, b.two.config_json) << name;
}

// Both ways, and the same records and facts when the text is imported at all (a refusal is
// checked by parse_both to be the same both ways).
Both parsed_alike(const std::string& text, const std::string& name) {
  Both b = parse_both(text, name);
  if (b.two.stats.passes != 0) expect_same(b, name);
  return b;
}

std::vector<std::filesystem::path> text_fixtures() {
  std::vector<std::filesystem::path> v;
  for (const char* dir : {ES_IMPORT_DATA, ES_LINKER_DATA})
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
      if (e.is_regular_file() && e.path().extension() == ".txt") v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> v;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) v.push_back(l);
  return v;
}

// Paste damage of the kind the import repairs: a mailer's hard wrap at 72 columns, "CPU n:" tags.
std::string wrapped(const std::string& text) {
  std::string out;
  for (std::string l : lines_of(text)) {
    while (l.size() > 72) {
      const size_t cut = l.rfind(' ', 72);
      if (cut == std::string::npos || cut == 0) break;
      out += l.substr(0, cut) + "\n";
      l = l.substr(cut + 1);
    }
    out += l + "\n";
  }
  return out;
}
std::string cpu_tagged(const std::string& text) {
  std::string out;
  for (const std::string& l : lines_of(text)) out += "CPU 3: " + l + "\n";
  return out;
}

TEST(OnePass, EveryFixtureAndItsDamagedCopiesGiveTheTwoPassesRecords) {
  size_t held = 0, total = 0;
  std::string fell_back;
  for (const auto& p : text_fixtures()) {
    const std::string text = slurp(p.string()), name = p.filename().string();
    for (const auto& [tag, t] : {std::pair<std::string, std::string>{"", text},
                                 {" (wrapped)", wrapped(text)},
                                 {" (CPU tags)", cpu_tagged(text)}}) {
      const Both b = parsed_alike(t, name + tag);
      if (b.two.stats.passes == 0) continue;  // refused both ways (parse_both checked the errors)
      ++total;
      if (b.one.stats.passes == 1)
        ++held;
      else
        fell_back += "\n  " + name + tag;
    }
  }
  std::printf("single pass held on %zu of %zu texts; two passes for:%s\n", held, total, fell_back.c_str());
  EXPECT_GT(total, 100u);
  // The usual paste is decided by its first lines: most texts link in one pass.
  EXPECT_GT(held * 4, total * 3);
}

// A thread whose first lines name no vCPU (kvm_exit before 5.10, a thread not named "CPU n/KVM")
// and whose later kvm_entry says vcpu 1: two passes put every one of its lines on vCPU 1 (the
// whole file is learned first). The single pass learns the first 256 KiB before it links: a
// kvm_entry within them settles it in one pass; one past them, after the single pass had
// guessed vCPU 0, makes it fall back.
std::string late_vcpu_text(size_t filler_lines) {
  std::string text = " qemu-system-x86-4242  [001]  100.000001: kvm_exit: reason EPT_VIOLATION rip 0x1000 info 181 0\n";
  char line[160];
  for (size_t i = 0; i < filler_lines; ++i) {
    std::snprintf(line, sizeof line, " CPU 0/KVM-11  [000]  %zu.%06zu: kvm_entry: vcpu 0, rip 0x%zx\n",
                  101 + i / 1000000, i % 1000000, 0x2000 + i);
    text += line;
  }
  text +=
      " qemu-system-x86-4242  [001]  200.000002: kvm_entry: vcpu 1\n"
      " qemu-system-x86-4242  [001]  200.000003: kvm_exit: reason HLT rip 0x1002 info 0 0\n"
      " qemu-system-x86-4242  [001]  200.000004: kvm_entry: vcpu 1\n";
  return text;
}

TEST(OnePass, AThreadsVcpuNamedWithinTheFirstLinesIsLinkedInOnePass) {
  const Both b = parsed_alike(late_vcpu_text(10), "late_vcpu.txt");
  EXPECT_EQ(b.one.stats.passes, 1u);
  size_t on_1 = 0;
  for (const es_record& r : b.one.records) on_1 += r.vcpu == 1;
  EXPECT_EQ(on_1, 4u);  // 4242's two exits and two entries
}

TEST(OnePass, AThreadsVcpuNamedOnlyPastTheFirstLinesFallsBackToTwoPasses) {
  const std::string text = late_vcpu_text(8000);
  ASSERT_GT(text.size(), size_t{300} << 10);
  const Both b = parsed_alike(text, "late_vcpu_far.txt");
  EXPECT_EQ(b.one.stats.passes, 2u);
  ASSERT_FALSE(b.two.records.empty());
  EXPECT_EQ(b.two.records.front().vcpu, 1u);  // 4242's first exit, on the vCPU its later line names
}

// Lines out of time order are sorted before they are linked: the single pass cannot, and falls back.
TEST(OnePass, LinesOutOfTimeOrderFallBackAndAreSorted) {
  const std::string text =
      " CPU 0/KVM-11  [000]  5.000002: kvm_exit: vcpu 0 reason HLT rip 0x1002 info1 0x0 info2 0x0 intr_info 0x0 "
      "error_code 0x0\n"
      " CPU 0/KVM-11  [000]  5.000001: kvm_entry: vcpu 0, rip 0x1000\n"
      " CPU 0/KVM-11  [000]  5.000003: kvm_entry: vcpu 0, rip 0x1003\n";
  const Both b = parsed_alike(text, "unsorted.txt");
  EXPECT_EQ(b.one.stats.passes, 2u);
  EXPECT_EQ(b.two.stats.out_of_order, 1u);
}

// trace-cmd's kvm plugin prints "info A B" on every kernel. The first exit (HLT, info2 0) says
// nothing; nor does the second, an EXCEPTION_NMI with a valid info2 0x80000b0e (#PF: valid as the
// VM-exit interruption info of an exception exit, and as IDT-vectoring info too); the third, an
// EPT_VIOLATION with a valid info2, says 5.10+ (only IDT-vectoring info can be valid there: SDM
// Vol. 3C 28.2.2 / 28.2.4). Two passes read the second exit's info2 as IDT-vectoring; the single
// pass had read it as the exit interruption info, and falls back.
TEST(OnePass, InfoPairMeaningSettledByALaterLineFallsBack) {
  const std::string text =
      " CPU 0/KVM-11  [000]  7.000001: kvm_exit: reason HLT rip 0x1000 info 0 0\n"
      " CPU 0/KVM-11  [000]  7.000002: kvm_entry: vcpu 0, rip 0x1001\n"
      " CPU 0/KVM-11  [000]  7.000003: kvm_exit: reason EXCEPTION_NMI rip 0x1001 info 0 80000b0e\n"
      " CPU 0/KVM-11  [000]  7.000004: kvm_entry: vcpu 0, rip 0x1001\n"
      " CPU 0/KVM-11  [000]  7.000005: kvm_exit: reason EPT_VIOLATION rip 0x1001 info 181 80000020\n"
      " CPU 0/KVM-11  [000]  7.000006: kvm_entry: vcpu 0, rip 0x1001\n"
      " CPU 0/KVM-11  [000]  7.000007: kvm_exit: reason EPT_VIOLATION rip 0x1001 info 181 80000020\n";
  const Both b = parsed_alike(text, "late_era.txt");
  EXPECT_EQ(b.one.stats.passes, 2u);
  // The reading itself: the EXCEPTION_NMI exit's info2 is its IDT-vectoring information, as on
  // every exit of the text (0x80000b0e: valid, hardware exception, error code, vector 14 #PF;
  // the format of SDM Vol. 3C 28.2.4).
  std::vector<const es_record*> exits;
  for (const es_record& r : b.one.records)
    if (r.kind == ES_KIND_VM_EXIT) exits.push_back(&r);
  ASSERT_EQ(exits.size(), 4u);
  EXPECT_EQ(exits[1]->reason, 0u);  // EXCEPTION_NMI
  EXPECT_EQ(exits[1]->idt_vectoring_info, 0x80000b0eu);
  EXPECT_EQ(exits[2]->idt_vectoring_info, 0x80000020u);
}

// A 5.10+ raw ftrace text names the vCPU and the fields on every line: one pass.
TEST(OnePass, ATextThatSaysEverythingOnItsFirstLinesIsLinkedInOnePass) {
  const std::string text = slurp(std::string(ES_IMPORT_DATA) + "/livelock.txt");
  const Both b = parsed_alike(text, "livelock.txt");
  EXPECT_EQ(b.one.stats.passes, 1u);
}

// Through the CLI: the recording written in one pass has the same rows as the one written in two
// (ES_IMPORT_TWO_PASS=1), session summary included; also where the single pass gave up and the
// import read the text again (vmx_510.txt has a line out of time order, the other two VMs).
TEST(OnePass, TheRecordingIsTheSameEitherWay) {
  const std::string dir = std::string(ES_TEST_TMPDIR) + "/one_pass";
  std::filesystem::create_directories(dir);
  for (const char* f : {"livelock.txt", "svm_nested_smm_2021.txt", "real/kvm_list_2023_ept_loop_windows_flowed.txt",
                        "vmx_510.txt", "two_vms_interleaved_svm_6.1.txt"}) {
    const std::string in = std::string(ES_IMPORT_DATA) + "/" + f;
    const CliRun a = run_cli("import '" + in + "' --force --quiet -o '" + dir + "/one.db'");
    const CliRun b = run_cli_env("ES_IMPORT_TWO_PASS=1", "import '" + in + "' --force --quiet -o '" + dir + "/two.db'");
    ASSERT_EQ(a.code, 0) << a.err;
    ASSERT_EQ(b.code, 0) << b.err;
    const CliRun ea = run_cli("events '" + dir + "/one.db' --limit 100000");
    const CliRun eb = run_cli("events '" + dir + "/two.db' --limit 100000");
    EXPECT_EQ(ea.out, eb.out) << f;
    EXPECT_GT(ea.out.size(), 200u) << f;
    const CliRun ca = run_cli("chains '" + dir + "/one.db'");
    const CliRun cb = run_cli("chains '" + dir + "/two.db'");
    EXPECT_EQ(ca.out, cb.out) << f;
    const CliRun ia = run_cli("info '" + dir + "/one.db'");
    const CliRun ib = run_cli("info '" + dir + "/two.db'");
    // info names the recording's path and the wall-clock times of the import (started, ended):
    // those aside, every line equal.
    auto strip = [](const std::string& s) {
      std::string o;
      std::istringstream lines(s);
      for (std::string l; std::getline(lines, l);)
        if (l.find("one.db") == std::string::npos && l.find("two.db") == std::string::npos &&
            l.rfind("started:", 0) != 0 && l.rfind("status:", 0) != 0)
          o += l + "\n";
      return o;
    };
    EXPECT_EQ(strip(ia.out), strip(ib.out)) << f;
    EXPECT_NE(ia.out.find("imported trace ("), std::string::npos) << ia.out;
  }
}

// The progress line starts over when the text is read again: `import --progress` says so, with
// the reason, and says nothing of it for a text linked in one pass.
TEST(OnePass, ProgressSaysWhenTheTextIsReadAgain) {
  const std::string dir = std::string(ES_TEST_TMPDIR) + "/one_pass";
  std::filesystem::create_directories(dir);
  const std::string data = ES_IMPORT_DATA;
  const CliRun again = run_cli("import '" + data + "/vmx_510.txt' --progress --force -o '" + dir + "/p.db'");
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.err.find("importing: reading the text again in two passes (lines out of time order)"),
            std::string::npos)
      << again.err;
  const CliRun once = run_cli("import '" + data + "/livelock.txt' --progress --force -o '" + dir + "/p.db'");
  ASSERT_EQ(once.code, 0) << once.err;
  EXPECT_NE(once.err.find("importing:"), std::string::npos) << once.err;  // the progress line itself
  EXPECT_EQ(once.err.find("again"), std::string::npos) << once.err;
}

}  // namespace
}  // namespace es::test
