// Names of the record ABI enumerations (probes/include/exitscope/record.h), one table each.
// Exit reason names are hv/arch's (es::arch::exit_reason_name for VMX, es::arch::svm_exit_name
// for SVM), never repeated here; replay::exit_reason_text (format.h) picks by the record's flags.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace es::replay {

std::string_view kind_name(uint16_t kind);          // "VM_EXIT", ...; "" if unknown
std::string_view decision_name(uint32_t decision);  // "REQUEUE_FROM_VECTORING", ...; "" if unknown
// The checker rule of an ES_KIND_VIOLATION record's reason ("event-lost"); "" if unknown.
std::string_view violation_rule_name(uint32_t rule);
// What the rule checks, one sentence with its SDM section; "" if unknown.
std::string_view violation_rule_description(uint32_t rule);
std::string_view end_reason_name(uint32_t end);  // "guest exit", "limit", "triple fault", ...
std::string_view error_name(uint32_t error);     // ES_ERROR_*: "unimplemented instruction", ...

// Case-insensitive; a number is accepted too. nullopt if unknown.
std::optional<uint16_t> parse_kind(std::string_view text);
std::optional<uint32_t> parse_decision(std::string_view text);  // with or without "ES_DECISION_"

// "123" (ns), "1.5us", "20ms", "2s", "100ns". nullopt if malformed.
std::optional<uint64_t> parse_time_ns(std::string_view text);
// Unsigned integer in decimal or 0x hex. nullopt if malformed.
std::optional<uint64_t> parse_uint(std::string_view text);

// "1.234567890 s" style fixed-point seconds for a session time.
std::string format_time(uint64_t ns);
// The same, appended to `out`.
void append_time(std::string& out, uint64_t ns);

// All kind names, for --help texts ("VM_EXIT, VM_ENTRY, ...").
std::string kind_name_list();

}  // namespace es::replay
