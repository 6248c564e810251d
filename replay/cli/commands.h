// The exitscope commands. Each takes argv starting at the command name and returns the exit
// code: 0 success, 1 the command ran but found a problem, 2 usage / input error.
#pragma once

namespace es::cli {

int cmd_info(int argc, char** argv);
int cmd_events(int argc, char** argv);
int cmd_chains(int argc, char** argv);
int cmd_export(int argc, char** argv);
int cmd_check(int argc, char** argv);    // replay/cli/cmd_check.cpp
int cmd_diff(int argc, char** argv);     // replay/cli/cmd_diff.cpp
int cmd_gui(int argc, char** argv);      // replay/cli/cmd_gui.cpp (GUI engineer)
int cmd_import(int argc, char** argv);   // replay/cli/cmd_import.cpp (text trace import)
int cmd_migrate(int argc, char** argv);  // replay/cli/cmd_migrate.cpp (older schema -> current)
int cmd_stats(int argc, char** argv);    // replay/cli/cmd_stats.cpp (perf kvm stat figures, chains)

}  // namespace es::cli

// Written by the hv/vmm engineer (replay/cli/cmd_record.cpp).
int cmd_record(int argc, char** argv);
int cmd_scenarios(int argc, char** argv);
