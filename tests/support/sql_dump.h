// Tests that compare two recordings table by table: every row of a query as text.
#pragma once

#include <sqlite3.h>

#include <string>

#include "schema/sqlite_db.h"

namespace es::test {

// Every row of `sql`, one line per row, columns separated by '|' (NULL as "NULL").
inline std::string dump(db::Db& db, const std::string& sql) {
  auto st = db.prepare(sql);
  if (!st) return "prepare failed: " + st.error();
  std::string out;
  while (st->step() == SQLITE_ROW) {
    for (int i = 0; i < sqlite3_column_count(st->get()); ++i) {
      const unsigned char* t = sqlite3_column_text(st->get(), i);
      out += t ? reinterpret_cast<const char*>(t) : "NULL";
      out += '|';
    }
    out += '\n';
  }
  return out;
}

}  // namespace es::test
