// `exitscope export` as a user runs it: the built binary on a recording made here.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/export/export_fixture.h"
#include "tests/support/cli_run.h"

namespace es {
namespace {

using test::CliRun;
using test::count_lines;
using test::slurp;
CliRun run(const std::string& args) { return test::run_cli(args); }

class ExportCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { fx_ = test::make_export_recording("export_cli.db"); }
  static std::string db() { return "'" + fx_.path + "'"; }
  static std::string tmp(const std::string& name) {
    const std::string p = test::process_tmp(name);
    std::filesystem::remove(p);
    return p;
  }
  static test::ExportFixture fx_;
};
test::ExportFixture ExportCliTest::fx_;

TEST_F(ExportCliTest, HelpDescribesFormatsAndOptions) {
  const CliRun r = run("export --help");
  EXPECT_EQ(r.code, 0);
  for (const char* s : {"Usage: exitscope export", "--format", "text", "markdown", "perfetto", "chrome", "--chain",
                        "--from", "--to", "--vcpu", "-o FILE", "svg"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  EXPECT_NE(run("--help").out.find("  export"), std::string::npos);
}

TEST_F(ExportCliTest, StdoutAndFileGiveTheSameBytes) {
  for (const char* f : {"text", "markdown", "perfetto", "chrome"}) {
    const CliRun out = run("export " + db() + " --format " + f + " -o -");
    EXPECT_EQ(out.code, 0) << out.err;
    EXPECT_TRUE(out.err.empty()) << out.err;  // no progress for a small export off a terminal
    const std::string file = tmp(std::string("export_cli.") + f);
    const CliRun to_file = run("export " + db() + " --format=" + f + " -o '" + file + "'");
    EXPECT_EQ(to_file.code, 0) << to_file.err;
    EXPECT_TRUE(to_file.out.empty());
    EXPECT_EQ(slurp(file), out.out) << f;
    EXPECT_FALSE(std::filesystem::exists(file + ".partial"));
  }
  // The text golden is what the CLI prints too (the file name is the same: export_cli.db vs export.db).
  std::string golden = slurp(std::string(ES_GOLDEN_DIR) + "/full.txt");
  golden.replace(golden.find("export.db"), 9, "export_cli.db");
  EXPECT_EQ(run("export " + db() + " --format text").out, golden);
}

TEST_F(ExportCliTest, BadFormatExitsTwoListingFormats) {
  CliRun r = run("export " + db() + " --format pdf");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown format 'pdf'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("text, markdown, perfetto"), std::string::npos) << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_TRUE(r.out.empty());
}

// svg / png are drawn by the picture module built with the GUI (tests/gui checks the pictures);
// here only that the CLI writes them, headless, when the GUI is built.
TEST_F(ExportCliTest, SvgAndPngAreWrittenWhenTheGuiIsBuilt) {
#ifdef ES_HAVE_GUI
  for (const char* f : {"svg", "png"}) {
    const std::string file = tmp(std::string("export_cli_pic.") + f);
    const CliRun r = run("export " + db() + " --format " + f + " -o '" + file + "'");
    EXPECT_EQ(r.code, 0) << f << r.err;
    const std::string bytes = slurp(file);
    EXPECT_EQ(bytes.substr(0, 4), std::string(f) == "svg" ? "<?xm" : "\x89PNG") << f;
  }
#else
  GTEST_SKIP() << "exitscope-gui is not built (no Qt6)";
#endif
}

// svg / png are drawn inside the exitscope process by the picture module (issue #19: no other
// program is started). A tree holding only bin/exitscope and lib/exitscope/exitscope-render.so, no
// exitscope-gui, draws both, byte for byte as the build tree does, with no display, no
// XDG_RUNTIME_DIR (a root shell, CI) and QT_QPA_PLATFORM naming a platform that cannot start
// here: the module always draws off-screen. Nothing is printed on stderr. And the exitscope
// binary itself loads no Qt library (the dynamic loader's own list, as ldd prints it).
TEST_F(ExportCliTest, PicturesAreDrawnInProcessWithoutTheGuiProgramOrADisplay) {
#ifdef ES_HAVE_GUI
  namespace fs = std::filesystem;
  const fs::path tree = fs::path(test::process_tmp("inproc_tree"));
  fs::remove_all(tree);
  fs::create_directories(tree / "bin");
  fs::create_directories(tree / "lib" / "exitscope");
  fs::copy_file(ES_EXITSCOPE_BIN, tree / "bin" / "exitscope");
  fs::copy_file(ES_RENDER_MODULE, tree / "lib" / "exitscope" / "exitscope-render.so");
  ASSERT_FALSE(fs::exists(tree / "bin" / "exitscope-gui"));
  auto run_tree = [&](const std::string& env, const std::string& args) {
    const std::string out = tmp("inproc.out"), err = tmp("inproc.err");
    const std::string cmd =
        "env " + env + " '" + (tree / "bin" / "exitscope").string() + "' " + args + " >'" + out + "' 2>'" + err + "'";
    const int status = std::system(cmd.c_str());
    CliRun r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  };
  const std::string no_display = "-u DISPLAY -u WAYLAND_DISPLAY -u XDG_RUNTIME_DIR QT_QPA_PLATFORM=xcb";
  for (const char* f : {"svg", "png"}) {
    const std::string here = tmp(std::string("inproc_tree.") + f), built = tmp(std::string("inproc_built.") + f);
    const CliRun r = run_tree(no_display, "export " + db() + " --format " + f + " -o '" + here + "'");
    EXPECT_EQ(r.code, 0) << f << r.err;
    EXPECT_EQ(r.err, "") << f;
    const CliRun b = run("export " + db() + " --format " + f + " -o '" + built + "'");
    EXPECT_EQ(b.code, 0) << f << b.err;
    const std::string bytes = slurp(here);
    EXPECT_EQ(bytes.substr(0, 4), std::string(f) == "svg" ? "<?xm" : "\x89PNG") << f;
    EXPECT_EQ(bytes, slurp(built)) << f;
  }
  const CliRun libs = run_tree("LD_TRACE_LOADED_OBJECTS=1", "");
  EXPECT_NE(libs.out.find("libsqlite3"), std::string::npos) << libs.out;  // the list is there
  EXPECT_EQ(libs.out.find("libQt6"), std::string::npos) << libs.out;
  fs::remove_all(tree);
#else
  GTEST_SKIP() << "the picture module is not built (no Qt6)";
#endif
}

TEST_F(ExportCliTest, UnknownChainExitsTwoNamingTheIdAndLeavesNoFile) {
  const std::string file = tmp("export_cli_chain.txt");
  const CliRun r = run("export " + db() + " --chain 777 -o '" + file + "'");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no chain 777"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("exitscope chains"), std::string::npos) << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_FALSE(std::filesystem::exists(file));
  EXPECT_FALSE(std::filesystem::exists(file + ".partial"));
  const CliRun bad = run("export " + db() + " --chain abc");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("--chain"), std::string::npos) << bad.err;
}

TEST_F(ExportCliTest, ChainWindowAndVcpuOptions) {
  CliRun r = run("export " + db() + " --chain " + std::to_string(fx_.gp_chain) + " --format markdown");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("# Chain " + std::to_string(fx_.gp_chain) + ": #GP", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("triple fault"), std::string::npos);
  r = run("export " + db() + " --from 0.5us --to 1us");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("time 0.000000500 s .. 0.000001000 s"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("TRIPLE_FAULT"), std::string::npos);
  r = run("export " + db() + " --vcpu 1 --format chrome");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find("\"tid\":200000"), std::string::npos);  // vcpu 0 of L1
  EXPECT_NE(r.out.find("\"tid\":200001"), std::string::npos);
}

TEST_F(ExportCliTest, BadInputExitsTwoWithOneSentence) {
  for (const std::string& args : std::vector<std::string>{
           "export", "export /nonexistent/rec.db", "export " + db() + " --from yesterday",
           "export " + db() + " --vcpu -1", "export " + db() + " --from 2us --to 1us", "export " + db() + " --bogus",
           "export " + db() + " -o", "export " + db() + " -o /nonexistent/dir/out.txt"}) {
    const CliRun r = run(args);
    EXPECT_EQ(r.code, 2) << args;
    EXPECT_EQ(count_lines(r.err), 1u) << args << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << args;
  }
}

TEST_F(ExportCliTest, RefusesToOverwriteTheRecording) {
  const std::string before = slurp(fx_.path);
  const CliRun r = run("export " + db() + " -o " + db());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("is the recording itself"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(fx_.path), before);
}

// An export never replaces an existing file unless asked (the same --force rule as record,
// import and migrate): `export my.db --format png -o other.db` replaced another recording.
TEST_F(ExportCliTest, AnExistingFileIsReplacedOnlyWithForce) {
  const std::string other = tmp("other_recording.db");
  std::filesystem::copy_file(fx_.path, other);
  const std::string before = slurp(other);
  CliRun r = run("export " + db() + " --format svg -o '" + other + "'");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("exists; pass --force"), std::string::npos) << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_EQ(slurp(other), before);  // untouched
  r = run("export " + db() + " --format text -o '" + other + "' --force");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(slurp(other), run("export " + db() + " --format text").out);
}

// PNG bytes are not written to a terminal; with -o or a redirection they are. `script` gives
// the command a terminal as its standard output.
TEST_F(ExportCliTest, PngIsNotWrittenToATerminal) {
  if (std::system("command -v script >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "no 'script' (util-linux) to give a terminal";
  const std::string log = tmp("png_tty.log");
  const std::string cmd = "script -qec \"'" + std::string(ES_EXITSCOPE_BIN) + "' export " + db() +
                          " --format png\" /dev/null > '" + log + "' 2>&1";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2) << slurp(log);
  EXPECT_NE(slurp(log).find("PNG is binary"), std::string::npos) << slurp(log);
  EXPECT_EQ(slurp(log).find("PNG\r\n"), std::string::npos) << "PNG bytes reached the terminal";
}

// The Perfetto trace is protobuf: to a terminal it is refused the same way, with the way out
// (-o FILE, a redirect, or --format chrome for JSON).
TEST_F(ExportCliTest, PerfettoTraceIsNotWrittenToATerminal) {
  if (std::system("command -v script >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "no 'script' (util-linux) to give a terminal";
  const std::string log = tmp("pf_tty.log");
  const std::string cmd = "script -qec \"'" + std::string(ES_EXITSCOPE_BIN) + "' export " + db() +
                          " --format perfetto\" /dev/null > '" + log + "' 2>&1";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2) << slurp(log);
  EXPECT_NE(slurp(log).find("Perfetto trace is binary protobuf"), std::string::npos) << slurp(log);
  EXPECT_NE(slurp(log).find("--format chrome"), std::string::npos) << slurp(log);
  EXPECT_EQ(slurp(log).find("exitscope session"), std::string::npos) << "trace bytes reached the terminal";
}

}  // namespace
}  // namespace es
