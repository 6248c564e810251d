#include "schema/event_row.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>

namespace es::schema {

namespace {

constexpr std::string_view kInsertHead =
    "INSERT INTO events (id, kind, level, hv_level, vcpu, time_ns, reason, flags, cause, origin, rip, "
    "qualification, guest_phys, intr_info, intr_error, idt_vectoring_info, code_id, text, extra) VALUES ";
constexpr std::string_view kRowParams = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
constexpr int kRowParamCount = 19;

std::string insert_sql(size_t rows) {
  std::string sql(kInsertHead);
  for (size_t i = 0; i < rows; ++i) {
    if (i) sql += ',';
    sql += kRowParams;
  }
  return sql;
}

constexpr std::string_view kColumns =
    "e.id, e.kind, e.level, e.hv_level, e.vcpu, e.time_ns, e.reason, e.flags, e.cause, e.origin, e.rip, "
    "e.qualification, e.guest_phys, e.intr_info, e.intr_error, e.idt_vectoring_info, e.code_id, e.extra";

// The `extra` column (schema/v4.sql): a byte whose bit i says field i is nonzero, then each
// nonzero field in order as an unsigned LEB128 number. Fields: guest_linear,
// idt_vectoring_error, instr_len, aux, aux64. At most 1 + 10 + 5 + 5 + 5 + 10 bytes.
constexpr size_t kExtraFields = 5;
constexpr size_t kExtraMax = 1 + 10 + 5 + 5 + 5 + 10;

// Writes the packed form of `v` into `out`; returns its length, 0 when every field is zero
// (the column is then NULL).
size_t pack_extra(const std::array<uint64_t, kExtraFields>& v, unsigned char* out) {
  size_t n = 1;
  unsigned char mask = 0;
  for (size_t i = 0; i < kExtraFields; ++i) {
    uint64_t x = v[i];
    if (x == 0) continue;
    mask = static_cast<unsigned char>(mask | (1u << i));
    while (x >= 0x80) {
      out[n++] = static_cast<unsigned char>(x | 0x80);
      x >>= 7;
    }
    out[n++] = static_cast<unsigned char>(x);
  }
  if (mask == 0) return 0;
  out[0] = mask;
  return n;
}

// The inverse; a damaged blob (a file from a stranger) leaves the fields it cannot read 0.
std::array<uint64_t, kExtraFields> unpack_extra(std::string_view b) {
  std::array<uint64_t, kExtraFields> v{};
  if (b.empty()) return v;
  const auto mask = static_cast<unsigned char>(b[0]);
  size_t pos = 1;
  for (size_t i = 0; i < kExtraFields; ++i) {
    if (!(mask & (1u << i))) continue;
    uint64_t x = 0;
    for (unsigned shift = 0;; shift += 7) {
      if (pos >= b.size() || shift > 63) return v;
      const auto byte = static_cast<unsigned char>(b[pos++]);
      x |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) break;
    }
    v[i] = x;
  }
  return v;
}

void sql_pack_extra(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  std::array<uint64_t, kExtraFields> v{};
  for (int i = 0; i < argc && i < static_cast<int>(kExtraFields); ++i)
    v[static_cast<size_t>(i)] = static_cast<uint64_t>(sqlite3_value_int64(argv[i]));
  // A migrated file's old columns are any 64-bit integers (a stranger's file): every field may
  // take ten bytes here, not only the 64-bit ones of an es_record (kExtraMax). fuzz_recording_fields
  // found the overflow.
  unsigned char buf[1 + 10 * kExtraFields];
  const size_t n = pack_extra(v, buf);
  if (n == 0)
    sqlite3_result_null(ctx);
  else
    sqlite3_result_blob(ctx, buf, static_cast<int>(n), SQLITE_TRANSIENT);
}

void sql_extra_field(sqlite3_context* ctx, int, sqlite3_value** argv) {
  const int n = sqlite3_value_bytes(argv[0]);
  const auto* p = static_cast<const char*>(sqlite3_value_blob(argv[0]));
  const int64_t i = sqlite3_value_int64(argv[1]);
  const auto v = unpack_extra(p ? std::string_view(p, static_cast<size_t>(n)) : std::string_view());
  sqlite3_result_int64(
      ctx, i >= 0 && i < static_cast<int64_t>(kExtraFields) ? static_cast<int64_t>(v[static_cast<size_t>(i)]) : 0);
}

}  // namespace

std::string_view event_insert_sql() {
  static const std::string one = insert_sql(1);
  return one;
}
std::string event_insert_sql(size_t rows) { return insert_sql(rows); }
std::string_view event_row_columns() { return kColumns; }

namespace {

// Binds parameters base + 1 .. base + kRowParamCount.
void bind_row(db::Stmt& s, int base, const es_record& rec, int64_t code_id, unsigned char* extra,
              sqlite3_destructor_type copy) {
  if (rec.id)
    s.bind_u64(base + 1, rec.id);
  else
    s.bind_null(base + 1);
  s.bind(base + 2, int64_t{rec.kind});
  s.bind(base + 3, int64_t{rec.level});
  s.bind(base + 4, int64_t{rec.hv_level});
  s.bind(base + 5, int64_t{rec.vcpu});
  s.bind_u64(base + 6, rec.time_ns);
  s.bind(base + 7, int64_t{rec.reason});
  s.bind(base + 8, int64_t{rec.flags});
  s.bind_u64(base + 9, rec.cause);
  if (rec.origin)
    s.bind_u64(base + 10, rec.origin);
  else
    s.bind_null(base + 10);  // in no chain
  s.bind_u64(base + 11, rec.rip);
  s.bind_u64(base + 12, rec.qualification);
  s.bind_u64(base + 13, rec.guest_phys);
  s.bind(base + 14, int64_t{rec.intr_info});
  s.bind(base + 15, int64_t{rec.intr_error});
  s.bind(base + 16, int64_t{rec.idt_vectoring_info});
  if (code_id)
    s.bind(base + 17, code_id);
  else
    s.bind_null(base + 17);
  if (rec.kind == ES_KIND_CONSOLE) {
    const size_t n = std::min<size_t>(rec.aux, sizeof rec.bytes);
    s.bind(base + 18, std::string_view(reinterpret_cast<const char*>(rec.bytes), n));
  } else {
    s.bind_null(base + 18);
  }
  const size_t n = pack_extra({rec.guest_linear, rec.idt_vectoring_error, rec.instr_len, rec.aux, rec.aux64}, extra);
  if (n)
    sqlite3_bind_blob(s.get(), base + 19, extra, static_cast<int>(n), copy);
  else
    s.bind_null(base + 19);
}

}  // namespace

static_assert(sizeof(EventRowScratch::extra) == kExtraMax);

void bind_event_row(db::Stmt& s, const es_record& rec, int64_t code_id) {
  unsigned char buf[kExtraMax];
  bind_row(s, 0, rec, code_id, buf, SQLITE_TRANSIENT);
}

void bind_event_row(db::Stmt& s, const es_record& rec, int64_t code_id, EventRowScratch& scratch) {
  bind_row(s, 0, rec, code_id, scratch.extra, SQLITE_STATIC);
}

void bind_event_row(db::Stmt& s, size_t row, const es_record& rec, int64_t code_id, EventRowScratch& scratch) {
  bind_row(s, static_cast<int>(row) * kRowParamCount, rec, code_id, scratch.extra, SQLITE_STATIC);
}

int64_t read_event_row(const db::Stmt& s, es_record& r) {
  r.version = ES_RECORD_VERSION;
  r.id = s.col_u64(0);
  r.kind = static_cast<uint16_t>(s.col_i64(1));
  r.level = static_cast<uint8_t>(s.col_i64(2));
  r.hv_level = static_cast<uint8_t>(s.col_i64(3));
  r.vcpu = static_cast<uint16_t>(s.col_i64(4));
  r.time_ns = s.col_u64(5);
  r.reason = static_cast<uint32_t>(s.col_i64(6));
  r.flags = static_cast<uint32_t>(s.col_i64(7));
  r.cause = s.col_u64(8);
  r.origin = s.col_u64(9);  // NULL (in no chain) reads as 0
  r.rip = s.col_u64(10);
  r.qualification = s.col_u64(11);
  r.guest_phys = s.col_u64(12);
  r.intr_info = static_cast<uint32_t>(s.col_i64(13));
  r.intr_error = static_cast<uint32_t>(s.col_i64(14));
  r.idt_vectoring_info = static_cast<uint32_t>(s.col_i64(15));
  const auto extra = unpack_extra(s.col_null(17) ? std::string_view() : s.col_bytes(17));
  r.guest_linear = extra[0];
  r.idt_vectoring_error = static_cast<uint32_t>(extra[1]);
  r.instr_len = static_cast<uint32_t>(extra[2]);
  r.aux = static_cast<uint32_t>(extra[3]);
  r.aux64 = extra[4];
  return s.col_i64(16);  // NULL reads as 0: no code row
}

Result<void> register_event_row_functions(db::Db& db) {
  const int rc = sqlite3_create_function(db.get(), "es_pack_extra", 5, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr,
                                         &sql_pack_extra, nullptr, nullptr);
  const int rc2 = sqlite3_create_function(db.get(), "es_extra_field", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr,
                                          &sql_extra_field, nullptr, nullptr);
  if (rc != SQLITE_OK || rc2 != SQLITE_OK)
    return make_error("cannot register the events row functions on '" + db.path() + "': " + db.errmsg());
  return {};
}

}  // namespace es::schema
