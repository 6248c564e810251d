// The one conversion between an es_record (probes/include/exitscope/record.h) and a row of the
// events table (issue #19): the column list, the bind of a row and the read of a row. The
// recorder's writer, replay's reader and the benchmarks use these, so a change of the events
// table is this file's .cpp and a migration step, nothing else.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "exitscope/record.h"
#include "schema/result.h"
#include "schema/sqlite_db.h"

namespace es::schema {

// "INSERT INTO events (...) VALUES (?, ...)" for bind_event_row.
std::string_view event_insert_sql();
// The same with `rows` rows of parameters ("VALUES (?, ...), (?, ...), ..."): one statement
// stores them all, for the overload of bind_event_row that takes a row number.
std::string event_insert_sql(size_t rows);

// Binds `rec` to a statement prepared from event_insert_sql(). rec.id 0 lets SQLite assign the
// id (rowid). `code_id` is the row of the `code` table holding rec's instruction bytes, 0 for
// none. A console record's text (bytes[0..aux)) is written with the row. Every parameter is
// bound (NULL where the row has no value), so the statement can take the next row after
// sqlite3_reset alone (Stmt::rewind), without clearing its bindings.
void bind_event_row(db::Stmt& s, const es_record& rec, int64_t code_id);

// The packed `extra` bytes of one row, for the overload below that binds them without a copy.
struct EventRowScratch {
  unsigned char extra[36];
};
// The same, with the `extra` blob bound from `scratch` as it is (SQLITE_STATIC, no copy):
// `scratch` must stay unchanged until the statement has stepped (the recorder's writer: one
// scratch, bind, step, rewind, row after row).
void bind_event_row(db::Stmt& s, const es_record& rec, int64_t code_id, EventRowScratch& scratch);
// The same for row `row` (from 0) of a statement prepared from event_insert_sql(rows); each row
// needs its own scratch until the statement has stepped.
void bind_event_row(db::Stmt& s, size_t row, const es_record& rec, int64_t code_id, EventRowScratch& scratch);

// The select list (table alias `e`) read_event_row reads, kEventRowColumns columns; a caller
// appends its own columns after it (they start at column kEventRowColumns).
std::string_view event_row_columns();
inline constexpr int kEventRowColumns = 18;

// Reads the columns of event_row_columns() (from column 0) into `rec`: every field but bytes
// (the instruction bytes live in `code`, the console text in events.text). Returns the row's
// code id (0 for none).
int64_t read_event_row(const db::Stmt& s, es_record& rec);

// Registers two SQL functions on `db`: es_pack_extra(guest_linear, idt_vectoring_error,
// instr_len, aux, aux64), the `extra` column's value (schema/v4.sql) for the migration step that
// packs the old columns, and es_extra_field(extra, i), field i (0..4, in that order) of one.
Result<void> register_event_row_functions(db::Db& db);

}  // namespace es::schema
