// The import's session configuration ({"import": {...}} in sessions.config_json), written and
// read through nlohmann-json (issue #19): the stored text keeps the keys and the one-line form
// recordings on disk have, `exitscope info` says the same, a damaged JSON is one line.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>
#include <vector>

#include "replay/import/text_import.h"
#include "tests/support/cli_run.h"
#include "tests/support/tmp.h"

namespace {

using es::test::CliRun;
using es::test::process_tmp;
using es::test::run_cli;

std::string fixture(const std::string& name) { return std::string(ES_IMPORT_DATA) + "/" + name; }

void set_config(const std::string& db, const std::string& json) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(h, "UPDATE sessions SET config_json = ?", -1, &st, nullptr), SQLITE_OK);
  sqlite3_bind_text(st, 1, json.data(), static_cast<int>(json.size()), SQLITE_TRANSIENT);
  EXPECT_EQ(sqlite3_step(st), SQLITE_DONE);
  sqlite3_finalize(st);
  sqlite3_close(h);
}

std::string stored_config(const std::string& db) {
  sqlite3* h = nullptr;
  std::string out = "<none>";
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(h, "SELECT config_json FROM sessions", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
  }
  sqlite3_close(h);
  return out;
}

// The lines of `info` that come from the configuration: "import:" and the lines indented under
// it, and the vCPU map lines after "vcpus:".
std::string config_lines(const std::string& info) {
  std::string out;
  bool in = false;
  size_t start = 0;
  for (size_t nl; (nl = info.find('\n', start)) != std::string::npos; start = nl + 1) {
    const std::string line = info.substr(start, nl - start);
    const bool indented = line.rfind("            ", 0) == 0;
    if (line.rfind("import:", 0) == 0 || line.rfind("vcpus:", 0) == 0)
      in = true;
    else if (!indented)
      in = false;
    if (in && (indented || line.rfind("import:", 0) == 0)) out += line + "\n";
  }
  return out;
}

// Every field, a quote, a backslash and a control character (BEL) in strings, the trace.dat
// facts: the text the concatenating writer stored (", " between items, ": " after keys, \u0007
// for BEL), so recordings made before and after compare byte for byte.
TEST(ImportConfig, StoredTextHasTheKeysAndFormOfRecordingsOnDisk_Issue19) {
  es::import::ImportStats s;
  s.format = "trace.dat v7";
  s.lines = 12;
  s.kvm_events = 10;
  s.other_events = 1;
  s.comment_lines = 2;
  s.unparsed = 1;
  s.unparsed_lines = {7};
  s.vendor = "vmx";
  s.era = "6.x";
  s.assumptions = {"x\ay"};
  s.repaired = {"r"};
  s.vcpu_map = {"vcpu 0 = VM 1 (pid 1) vcpu 0"};
  s.file_version = 7;
  s.uname = "Linux h";
  s.cpus = 2;
  s.clock = "local";
  s.lost_events = 3;
  const std::string text = es::import::import_config_json(s, "a \"q\" \\ b.dat");
  EXPECT_EQ(text,
            R"({"import": {"file": "a \"q\" \\ b.dat", "format": "trace.dat v7", "lines": 12, "kvm_events": 10, )"
            R"("other_events": 1, "comment_lines": 2, "joined_lines": 0, "quoted_lines": 0, "unparsed": 1, )"
            R"("unparsed_lines": [7], "vendor": "vmx", "era": "6.x", "assumptions": ["x\u0007y"], "skipped": [], )"
            R"("repaired": ["r"], "vcpu_map": ["vcpu 0 = VM 1 (pid 1) vcpu 0"], "file_version": 7, )"
            R"("uname": "Linux h", "cpus": 2, "clock": "local", "lost_events": 3}})");
  // Read back: records (trace.dat), the listed record, the facts, the control character as '?'.
  EXPECT_EQ(es::import::describe_import_config(text),
            "a \"q\" \\ b.dat (trace.dat v7, vmx), 12 records: 10 KVM events, 1 other, 1 undecodable (records 7)\n"
            "            kernel era: 6.x\n"
            "            traced host: Linux h, 2 CPUs, clock local\n"
            "            3 events lost in the kernel's ring buffer\n"
            "            repaired: r\n"
            "            assumed: x?y");
  EXPECT_EQ(es::import::describe_vcpu_map(text), std::vector<std::string>{"vcpu 0 = VM 1 (pid 1) vcpu 0"});
  // A live KVM recording keeps its map under "kvm" (probes/kvm/kvm_config.cpp); info reads it too.
  EXPECT_EQ(
      es::import::describe_vcpu_map(R"({"kvm": {"kernel": "6.1", "vcpu_map": ["vcpu 1 = VM 2 (pid 9) vcpu 0"]}})"),
      std::vector<std::string>{"vcpu 1 = VM 2 (pid 9) vcpu 0"});
}

// tests/data/import/two_vms_interleaved_svm_6.1.txt: 82 lines, 53 kvm_* events, 29 comment
// lines, two VMs on threads 157 and 172 running vCPU 0 each (the fixture's header says so).
// `info` says what it said before nlohmann-json (the text below is that output), and the row
// holds the text the concatenating writer stored.
TEST(ImportConfig, InfoOfAnImportedFixtureIsUnchanged_Issue19) {
  const std::string file = fixture("two_vms_interleaved_svm_6.1.txt");
  const std::string db = process_tmp("two_vms_config.db");
  ASSERT_EQ(run_cli("import '" + file + "' -o '" + db + "' --force").code, 0);
  const std::string assumed =
      "2 VMs told apart by their threads (the trace names no processes): KVM runs a vCPU on one thread for its "
      "life, so a second thread naming a vCPU id already running is another VM's, and a thread joins the first VM "
      "that has no thread for its vCPU id; the first VM keeps its vCPU numbers, later VMs get the next free ones "
      "(the vCPU map says which is which)";
  const std::string era = "Linux 6.0+ (kvm_exit prints intr_info, kvm_inj_virq / kvm_inj_exception in the 6.0+ format)";
  EXPECT_EQ(stored_config(db),
            "{\"import\": {\"file\": \"" + file +
                "\", \"format\": \"ftrace\", \"lines\": 82, \"kvm_events\": 53, \"other_events\": 0, "
                "\"comment_lines\": 29, \"joined_lines\": 0, \"quoted_lines\": 0, \"unparsed\": 0, \"unparsed_lines\": "
                "[], \"vendor\": \"svm\", \"era\": \"" +
                era + "\", \"assumptions\": [\"" + assumed +
                "\"], \"skipped\": [], \"repaired\": [], \"vcpu_map\": [\"vcpu 0 = VM 1 (thread 157) vcpu 0\", "
                "\"vcpu 1 = VM 2 (thread 172) vcpu 0\"]}}");
  const CliRun info = run_cli("info '" + db + "'");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_EQ(config_lines(info.out), "import:     " + file +
                                        " (ftrace, svm), 82 lines: 53 KVM events, 0 other, 0 unparsed\n"
                                        "            kernel era: " +
                                        era + "\n            assumed: " + assumed +
                                        "\n"
                                        "            vcpu 0 = VM 1 (thread 157) vcpu 0\n"
                                        "            vcpu 1 = VM 2 (thread 172) vcpu 0\n");
}

// A recording someone sent with its configuration cut short: `info` says so in one line where
// the import summary goes and shows the rest of the recording (exit 0); no vCPU map is made up.
TEST(ImportConfig, DamagedJsonIsOneUnreadableLine_Issue19) {
  const std::string cut = R"({"import": {"file": "t.txt", "format": "ftrace", "lines": 8, "vcpu_map": ["vcpu 0 = )";
  EXPECT_EQ(es::import::describe_import_config(cut), "configuration unreadable (its JSON is damaged)");
  EXPECT_TRUE(es::import::describe_vcpu_map(cut).empty());
  EXPECT_EQ(es::import::describe_import_config(R"({"import": 7})"), "configuration unreadable (its JSON is damaged)");
  // Not an import's: nothing to say.
  EXPECT_EQ(es::import::describe_import_config(R"({"max_exits": 0})"), "");
  EXPECT_EQ(es::import::describe_import_config("{\"kvm\": {"), "");

  const std::string db = process_tmp("damaged_config.db");
  ASSERT_EQ(run_cli("import '" + fixture("two_vms_interleaved_svm_6.1.txt") + "' -o '" + db + "' --force").code, 0);
  set_config(db, cut);
  const CliRun info = run_cli("info '" + db + "'");
  EXPECT_EQ(info.code, 0) << info.err;
  EXPECT_EQ(config_lines(info.out), "import:     configuration unreadable (its JSON is damaged)\n");
  EXPECT_NE(info.out.find("\nevents:     57  (time "), std::string::npos) << info.out;
}

// Imports made before nlohmann-json stored file names byte for byte, invalid UTF-8 included,
// which a JSON parser refuses: such a recording still has its summary, the bad byte shown as
// U+FFFD (escaped by info as \xef\xbf\xbd).
TEST(ImportConfig, OldRecordingWithInvalidUtf8IsStillRead_Issue19) {
  const std::string old =
      "{\"import\": {\"file\": \"tr\xff.txt\", \"format\": \"ftrace\", \"lines\": 3, \"kvm_events\": 2, "
      "\"other_events\": 0, \"comment_lines\": 1, \"joined_lines\": 0, \"quoted_lines\": 0, \"unparsed\": 0, "
      "\"unparsed_lines\": [], \"vendor\": \"vmx\", \"era\": \"\", \"assumptions\": [], \"skipped\": [], "
      "\"repaired\": []}}";
  EXPECT_EQ(es::import::describe_import_config(old),
            "tr\xEF\xBF\xBD.txt (ftrace, vmx), 3 lines: 2 KVM events, 0 other, 0 unparsed");
}

}  // namespace
