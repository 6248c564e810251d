#include "schema/event_row.h"

#include <algorithm>

namespace es::schema {

namespace {

constexpr std::string_view kInsert =
    "INSERT INTO events (id, kind, level, hv_level, vcpu, time_ns, reason, flags, cause, origin, rip, "
    "qualification, guest_linear, guest_phys, intr_info, intr_error, idt_vectoring_info, idt_vectoring_error, "
    "instr_len, aux, aux64, code_id, text) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

constexpr std::string_view kColumns =
    "e.id, e.kind, e.level, e.hv_level, e.vcpu, e.time_ns, e.reason, e.flags, e.cause, e.origin, e.rip, "
    "e.qualification, e.guest_linear, e.guest_phys, e.intr_info, e.intr_error, e.idt_vectoring_info, "
    "e.idt_vectoring_error, e.instr_len, e.aux, e.aux64, e.code_id";

}  // namespace

std::string_view event_insert_sql() { return kInsert; }
std::string_view event_row_columns() { return kColumns; }

void bind_event_row(db::Stmt& s, const es_record& rec, int64_t code_id) {
  if (rec.id)
    s.bind_u64(1, rec.id);
  else
    s.bind_null(1);
  s.bind(2, int64_t{rec.kind});
  s.bind(3, int64_t{rec.level});
  s.bind(4, int64_t{rec.hv_level});
  s.bind(5, int64_t{rec.vcpu});
  s.bind_u64(6, rec.time_ns);
  s.bind(7, int64_t{rec.reason});
  s.bind(8, int64_t{rec.flags});
  s.bind_u64(9, rec.cause);
  s.bind_u64(10, rec.origin);
  s.bind_u64(11, rec.rip);
  s.bind_u64(12, rec.qualification);
  s.bind_u64(13, rec.guest_linear);
  s.bind_u64(14, rec.guest_phys);
  s.bind(15, int64_t{rec.intr_info});
  s.bind(16, int64_t{rec.intr_error});
  s.bind(17, int64_t{rec.idt_vectoring_info});
  s.bind(18, int64_t{rec.idt_vectoring_error});
  s.bind(19, int64_t{rec.instr_len});
  s.bind(20, int64_t{rec.aux});
  s.bind_u64(21, rec.aux64);
  if (code_id) s.bind(22, code_id);
  if (rec.kind == ES_KIND_CONSOLE) {
    const size_t n = std::min<size_t>(rec.aux, sizeof rec.bytes);
    s.bind(23, std::string_view(reinterpret_cast<const char*>(rec.bytes), n));
  }
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
  r.origin = s.col_u64(9);
  r.rip = s.col_u64(10);
  r.qualification = s.col_u64(11);
  r.guest_linear = s.col_u64(12);
  r.guest_phys = s.col_u64(13);
  r.intr_info = static_cast<uint32_t>(s.col_i64(14));
  r.intr_error = static_cast<uint32_t>(s.col_i64(15));
  r.idt_vectoring_info = static_cast<uint32_t>(s.col_i64(16));
  r.idt_vectoring_error = static_cast<uint32_t>(s.col_i64(17));
  r.instr_len = static_cast<uint32_t>(s.col_i64(18));
  r.aux = static_cast<uint32_t>(s.col_i64(19));
  r.aux64 = s.col_u64(20);
  return s.col_i64(21);  // NULL reads as 0: no code row
}

}  // namespace es::schema
