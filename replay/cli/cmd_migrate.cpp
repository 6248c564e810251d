// `exitscope migrate`: bring a recording of an older schema to the current one, as a copy
// (the default) or in place.
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "replay/cli/args.h"
#include "replay/cli/commands.h"
#include "replay/cli/startup.h"
#include "replay/cli/output.h"
#include "probes/recorder/output_file.h"
#include "replay/recording.h"
#include "replay/chains.h"
#include "schema/migrations.h"

namespace es::cli {

namespace {
constexpr std::string_view kName = "migrate";
constexpr OptionSpec kOptions[] = {
    {"output", "NEW", "write the migrated copy to NEW (also -o NEW; default: DB's name with .vN.db, beside it)"},
    {"force", "", "replace NEW if it exists"},
    {"in-place", "", "migrate DB itself (each step in one transaction; no copy is made)"},
};

std::string quote(const std::string& p) { return "'" + p + "'"; }
}  // namespace

int cmd_migrate(int argc, char** argv) {
  const std::string v = std::to_string(schema::kSchemaVersion);
  const std::string description =
      "Migrate the recording DB to the current schema (v" + v +
      "). By default DB is left as it is and a\n"
      "migrated copy is written beside it (old.db -> old.v" +
      v +
      ".db); the other commands do the same\n"
      "on their own when they open an older recording, and say so. --in-place upgrades DB itself.\n"
      "A recording from a newer exitscope is refused: open it with that version.";
  const CommandSpec spec{kName,
                         "DB [-o NEW [--force] | --in-place]",
                         description,
                         kOptions,
                         kOneRecording,
                         /*short_output=*/true};
  auto args = start_command(spec, argc, argv);
  if (!args) return args.exit_code;
  if (args->has("in-place") && args->has("output"))
    return usage_error(kName, "give either --in-place or --output NEW, not both");
  const std::string path = args->positional[0];
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    std::fprintf(stderr, "exitscope migrate: recording %s does not exist or is not a file; check the path.\n",
                 quote(path).c_str());
    return 2;
  }
  const bool in_place = args->has("in-place");
  auto db = db::Db::open(path, in_place ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY);
  if (!db) {
    std::fprintf(stderr, "exitscope migrate: %s\n",
                 schema::describe_sqlite_error(path, "opening", SQLITE_CANTOPEN, db.error()).c_str());
    return 2;
  }
  auto version = schema::check_readable(*db);
  if (!version) {
    std::fprintf(stderr, "exitscope migrate: %s\n", version.error().c_str());
    return 2;
  }
  const std::string current = "v" + std::to_string(schema::kSchemaVersion);
  if (*version == schema::kSchemaVersion) {
    // At the current schema, the stored chain figures (v3) may still be another build's: decided
    // by other chain rules (chain_rules' stamp), or never stored. --in-place stores this build's.
    if (auto figures = replay::chain_figures_current(*db); figures && *figures) {
      std::printf("%s is already at schema %s; nothing to do.\n", quote(path).c_str(), current.c_str());
      return 0;
    }
    if (!in_place) {
      std::printf(
          "%s is already at schema %s, but its chain figures are not this exitscope's (chain rules v%d): "
          "'exitscope migrate %s --in-place' stores them.\n",
          quote(path).c_str(), current.c_str(), static_cast<int>(replay::kChainRulesVersion), path.c_str());
      return 0;
    }
    auto r = replay::store_chain_figures(*db);
    if (!r) {
      std::fprintf(stderr, "exitscope migrate: %s Nothing else in the file was changed.\n", r.error().c_str());
      return 2;
    }
    std::printf("%s is at schema %s; %s\n", quote(path).c_str(), current.c_str(),
                *r ? "stored this exitscope's chain figures in it." : "nothing to do.");
    return 0;
  }
  const std::string from = "v" + std::to_string(*version);
  if (in_place) {
    if (auto r = schema::migrate(*db); !r) {
      std::fprintf(stderr, "exitscope migrate: %s The file is left at its last complete schema version.\n",
                   r.error().c_str());
      return 2;
    }
    // Chain figures for `stats` (schema v3): a walk of the chains, written in one transaction.
    if (auto r = replay::store_chain_figures(*db); !r)
      std::fprintf(stderr, "exitscope migrate: %s The file is migrated; 'stats' reads its chains the slower way.\n",
                   r.error().c_str());
    std::printf("migrated %s in place from schema %s to %s.\n", quote(path).c_str(), from.c_str(), current.c_str());
    return 0;
  }
  const std::string out_arg = args->get("output").value_or(replay::migrated_copy_path(path));
  if (out_arg.empty()) return usage_error(kName, "--output needs a file name");
  if (recorder::same_file(path, out_arg)) return usage_error(kName, "NEW must differ from DB (use --in-place)");
  // Not a device or pipe, not a recording in progress; a symlink's file is replaced, the link kept.
  auto plan = plan_output(out_arg, {path}, true, "recording");
  if (!plan) {
    std::fprintf(stderr, "exitscope migrate: %s\n", plan.error().c_str());
    return 2;
  }
  const std::string out = plan->path;
  if (std::filesystem::exists(out, ec) && !args->has("force")) {
    std::fprintf(stderr,
                 "exitscope migrate: %s already exists; pass --force to replace it or choose another name with -o.\n",
                 quote(out).c_str());
    return 2;
  }
  if (std::filesystem::equivalent(path, out, ec)) return usage_error(kName, "NEW must differ from DB (use --in-place)");
  if (auto r = schema::migrate_copy(*db, out); !r) {
    std::fprintf(stderr, "exitscope migrate: %s\n", r.error().c_str());
    return 2;
  }
  if (auto rw = db::Db::open(out, SQLITE_OPEN_READWRITE); rw)
    if (auto r = replay::store_chain_figures(*rw); !r)
      std::fprintf(stderr, "exitscope migrate: %s The copy is migrated; 'stats' reads its chains the slower way.\n",
                   r.error().c_str());
  std::printf("migrated %s (schema %s) to %s (schema %s); the original is unchanged.\n", quote(path).c_str(),
              from.c_str(), quote(out).c_str(), current.c_str());
  return 0;
}

}  // namespace es::cli
