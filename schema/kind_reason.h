// The events_kind_reason index (schema/indexes.sql) holds one integer per event, (kind << 32) |
// (reason & 0xFFFFFFFF). SQLite answers a term through it only when the term is written on that same expression,
// so a query that filters by kind, or by kind and reason, writes it with these.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace es::schema {

// The key of (kind, reason): kind is 16 bits and reason 32 (es_record), so keys order as the
// pairs do and a kind's keys are one range.
constexpr int64_t kind_reason_key(uint16_t kind, uint32_t reason) {
  return (static_cast<int64_t>(kind) << 32) | static_cast<int64_t>(reason);
}
constexpr int64_t kind_first_key(uint16_t kind) { return kind_reason_key(kind, 0); }
constexpr int64_t kind_last_key(uint16_t kind) { return kind_reason_key(kind, 0xFFFFFFFFu); }
constexpr uint16_t key_kind(int64_t key) { return static_cast<uint16_t>(key >> 32); }
constexpr uint32_t key_reason(int64_t key) { return static_cast<uint32_t>(key & 0xFFFFFFFF); }

// The indexed expression, its columns qualified by `alias` when one is given ("e" ->
// "((e.kind << 32) | (e.reason & 4294967295))"): the text to compare with a key. A row whose
// reason is out of range (a hostile file) keys within its own kind's range all the same.
inline std::string kind_reason_key_sql(std::string_view alias = {}) {
  const std::string p = alias.empty() ? std::string() : std::string(alias) + ".";
  return "((" + p + "kind << 32) | (" + p + "reason & 4294967295))";
}

// `kind = ?` as the index answers it: "<key> BETWEEN ? AND ?", bound to kind_first_key(kind) and
// kind_last_key(kind).
inline std::string kind_range_sql(std::string_view alias = {}) {
  return kind_reason_key_sql(alias) + " BETWEEN ? AND ?";
}

}  // namespace es::schema
