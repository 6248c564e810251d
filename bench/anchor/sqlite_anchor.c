/* SQLite's ceiling on this machine for the rows exitscope writes (issue #18): a bare C program
 * that writes the same events rows and one row per chain into a file with the same schema
 * (schema/v1.sql .. v5.sql, read at run time) and builds the same indexes (schema/indexes.sql, and
 * schema/time_index.sql when the rows' times do not follow their ids, as schema::create_indexes
 * decides; the same event_order row). The import and record figures in BENCHMARKS.md are ratios
 * to this program's whole-process time, measured in the same run (bench/anchor/anchor_e2e.sh).
 *
 *   sqlite_anchor dump REC.db ROWS.bin       rows of an exitscope recording -> a flat file
 *                                            (not timed: the input of `write`)
 *   sqlite_anchor write ROWS.bin OUT.db [--journal wal|off]
 *
 * `write` maps ROWS.bin and inserts the events 32 to a statement as the recorder does, one
 * transaction per 16 384 events (the recorder's batch), then builds the indexes (with the cache and
 * sorter threads schema::create_indexes sets) and leaves WAL
 * for a rollback journal as a finished recording does. --journal wal (default): WAL with
 * synchronous=NORMAL, what exitscope uses while writing. --journal off: no journal, no sync,
 * one transaction: what SQLite can do with no crash consistency at all (a higher ceiling).
 * Like exitscope's writer it opens its connection SQLITE_OPEN_NOMUTEX with SQLite's memory
 * statistics off (SQLITE_CONFIG_MEMSTATUS 0), binds every column of every row and never clears
 * the bindings, and counts the vcpus rows as it inserts.
 * What it does not do: parse anything, link chains or decide outcomes (chain rows carry the
 * counts, the outcome is a fixed word), hash the input, rename a partial file.
 */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The stored columns of a schema v4 events row (schema/event_row.cpp writes them): kInts integers
 * (origin and code_id 0 = NULL), then the `extra` blob (NULL = empty). */
enum { kInts = 17, kExtraMax = 47, kBatch = 16384, kRowsPerInsert = 32 };
struct Row {
  int64_t v[kInts];
  uint8_t extra_len;
  uint8_t extra[kExtraMax];
};
enum { kId = 0, kVcpu = 4, kTime = 5, kOrigin = 9, kCodeId = 16 };

static const char* kColumns =
    "id, kind, level, hv_level, vcpu, time_ns, reason, flags, cause, origin, rip, qualification, guest_phys, "
    "intr_info, intr_error, idt_vectoring_info, code_id, extra";

static int die(sqlite3* db, const char* what) {
  fprintf(stderr, "sqlite_anchor: %s: %s\n", what, db ? sqlite3_errmsg(db) : "cannot open");
  exit(1);
}

static char* read_text(const char* path) {
  FILE* f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "sqlite_anchor: cannot read %s\n", path);
    exit(1);
  }
  fseek(f, 0, SEEK_END);
  const long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char* s = malloc((size_t)n + 1);
  if (!s || fread(s, 1, (size_t)n, f) != (size_t)n) exit(1);
  s[n] = 0;
  fclose(f);
  return s;
}

static void exec_file(sqlite3* db, const char* name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", ES_SCHEMA_DIR, name);
  char* sql = read_text(path);
  if (sqlite3_exec(db, sql, 0, 0, 0) != SQLITE_OK) die(db, name);
  free(sql);
}

static int dump(const char* in, const char* out) {
  sqlite3* db = 0;
  if (sqlite3_open_v2(in, &db, SQLITE_OPEN_READONLY, 0) != SQLITE_OK) die(db, in);
  char sql[1024];
  snprintf(sql, sizeof sql, "SELECT %s FROM events ORDER BY id", kColumns);
  sqlite3_stmt* st = 0;
  if (sqlite3_prepare_v2(db, sql, -1, &st, 0) != SQLITE_OK) die(db, "select");
  FILE* f = fopen(out, "wb");
  if (!f) return 1;
  uint64_t n = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    struct Row row;
    memset(&row, 0, sizeof row);
    for (int i = 0; i < kInts; ++i) row.v[i] = sqlite3_column_int64(st, i);
    const int len = sqlite3_column_bytes(st, kInts);
    if (len > kExtraMax) die(db, "extra column longer than schema/event_row.cpp writes");
    row.extra_len = (uint8_t)len;
    if (len) memcpy(row.extra, sqlite3_column_blob(st, kInts), (size_t)len);
    fwrite(&row, sizeof row, 1, f);
    ++n;
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  fclose(f);
  printf("%llu rows\n", (unsigned long long)n);
  return 0;
}

/* schema/v4.sql packs the v3 columns with es_pack_extra (schema/event_row.cpp); the anchor runs
 * that step on an empty table, where the function is never called. */
static void no_pack_extra(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  (void)argc;
  (void)argv;
  sqlite3_result_null(ctx);
}

static void step(sqlite3* db, sqlite3_stmt* st) {
  if (sqlite3_step(st) != SQLITE_DONE) die(db, "insert");
  sqlite3_reset(st);
}

static int write_rows(const char* in, const char* out, int journal_off) {
  const int fd = open(in, O_RDONLY);
  struct stat sb;
  if (fd < 0 || fstat(fd, &sb) != 0) return 1;
  const size_t n = (size_t)sb.st_size / sizeof(struct Row);
  const struct Row* rows = n ? mmap(0, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : 0;
  if (n && rows == MAP_FAILED) return 1;
  unlink(out);
  sqlite3* db = 0;
  /* As exitscope's recorder opens its recording (probes/recorder/recorder.cpp): one thread uses
   * the connection, so no per-call mutex (and SQLite's memory statistics are off, main()). */
  if (sqlite3_open_v2(out, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, 0) != SQLITE_OK)
    die(db, out);
  /* The recorder's page size and WAL checkpoint interval (probes/recorder/recorder.cpp). */
  if (sqlite3_exec(db, "PRAGMA page_size=8192", 0, 0, 0) != SQLITE_OK) die(db, "page_size");
  const char* pragmas = journal_off
                            ? "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF"
                            : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=500";
  if (sqlite3_exec(db, pragmas, 0, 0, 0) != SQLITE_OK) die(db, "pragmas");
  if (sqlite3_create_function(db, "es_pack_extra", 5, SQLITE_UTF8, 0, no_pack_extra, 0, 0) != SQLITE_OK)
    die(db, "es_pack_extra");
  exec_file(db, "v1.sql");
  exec_file(db, "v2.sql");
  exec_file(db, "v3.sql");
  exec_file(db, "v4.sql");
  exec_file(db, "v5.sql");
  char sql[1024];
  snprintf(sql, sizeof sql, "INSERT INTO events (%s) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", kColumns);
  sqlite3_stmt *ev = 0, *evs = 0, *chain = 0;
  if (sqlite3_prepare_v2(db, sql, -1, &ev, 0) != SQLITE_OK) die(db, "prepare events");
  /* kRowsPerInsert rows a statement, as the recorder's writer stores them (probes/recorder). */
  static char many[sizeof sql + kRowsPerInsert * 40];
  int len = snprintf(many, sizeof many, "INSERT INTO events (%s) VALUES ", kColumns);
  for (int k = 0; k < kRowsPerInsert; ++k)
    len += snprintf(many + len, sizeof many - (size_t)len, "%s(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", k ? "," : "");
  if (sqlite3_prepare_v2(db, many, -1, &evs, 0) != SQLITE_OK) die(db, "prepare events x32");
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO chains (id, root_event, vector, type, level, outcome, first_event, last_event, "
                         "event_count, inferred) VALUES (?, ?, 0, 0, 1, 'delivered', ?, ?, ?, 1)",
                         -1, &chain, 0) != SQLITE_OK)
    die(db, "prepare chains");
  sqlite3_exec(db, "BEGIN", 0, 0, 0);
  /* What the recorder's writer tracks: ids in order and times never decreasing (signed), and
   * each vCPU's first / last id and count (the vcpus rows; es_record.vcpu is 16 bits). */
  int time_sorted = 1;
  static int64_t vcpu_first[65536], vcpu_last[65536], vcpu_count[65536];
  for (size_t i = 0; i < n; ++i) {
    const struct Row* r = rows + i;
    if (i && (r->v[kId] < r[-1].v[kId] || r->v[kTime] < r[-1].v[kTime])) time_sorted = 0;
    const size_t vcpu = (size_t)r->v[kVcpu] & 0xFFFF;
    if (vcpu_count[vcpu] == 0 || r->v[kId] < vcpu_first[vcpu]) vcpu_first[vcpu] = r->v[kId];
    if (vcpu_count[vcpu] == 0 || r->v[kId] > vcpu_last[vcpu]) vcpu_last[vcpu] = r->v[kId];
    ++vcpu_count[vcpu];
    /* Rows of whole groups of kRowsPerInsert (counted from the first row, as a batch of the
     * recorder's is) go through evs; the rest one by one. */
    const int grouped = (i / kRowsPerInsert + 1) * kRowsPerInsert <= n;
    sqlite3_stmt* st = grouped ? evs : ev;
    const int base = grouped ? (int)(i % kRowsPerInsert) * (kInts + 1) : 0;
    for (int c = 0; c < kInts; ++c) {
      if ((c == kOrigin || c == kCodeId) && r->v[c] == 0)
        sqlite3_bind_null(st, base + c + 1);
      else
        sqlite3_bind_int64(st, base + c + 1, r->v[c]);
    }
    if (r->extra_len)
      sqlite3_bind_blob(st, base + kInts + 1, r->extra, r->extra_len, SQLITE_STATIC);
    else
      sqlite3_bind_null(st, base + kInts + 1);
    if (!grouped || i % kRowsPerInsert == kRowsPerInsert - 1) step(db, st);
    if (!journal_off && (i + 1) % kBatch == 0) {
      if (sqlite3_exec(db, "COMMIT; BEGIN", 0, 0, 0) != SQLITE_OK) die(db, "commit");
    }
  }
  if (sqlite3_exec(db, "COMMIT", 0, 0, 0) != SQLITE_OK) die(db, "commit");
  /* The index build with the settings schema::create_indexes uses (a 64 MiB cache for the
   * sorter's runs, two sorter threads): the ceiling gets the same tuning. */
  if (sqlite3_exec(db, "PRAGMA cache_size = -65536; PRAGMA threads = 2", 0, 0, 0) != SQLITE_OK) die(db, "pragmas");
  char order[160];
  snprintf(order, sizeof order,
           "CREATE TABLE IF NOT EXISTS event_order (time_sorted INTEGER NOT NULL); INSERT INTO event_order VALUES (%d)",
           time_sorted);
  if (sqlite3_exec(db, order, 0, 0, 0) != SQLITE_OK) die(db, "event_order");
  exec_file(db, "indexes.sql");
  if (!time_sorted) exec_file(db, "time_index.sql");
  /* One chains row per chain (members: the events with its origin, through events_origin), then
   * the vcpus rows counted above (the recorder writes them the same way). */
  if (sqlite3_exec(db, "BEGIN", 0, 0, 0) != SQLITE_OK) die(db, "begin");
  sqlite3_stmt* agg = 0;
  if (sqlite3_prepare_v2(
          db, "SELECT origin, min(id), max(id), count(*) FROM events WHERE origin IS NOT NULL GROUP BY origin", -1,
          &agg, 0) != SQLITE_OK)
    die(db, "chains");
  while (sqlite3_step(agg) == SQLITE_ROW) {
    sqlite3_bind_int64(chain, 1, sqlite3_column_int64(agg, 0));
    sqlite3_bind_int64(chain, 2, sqlite3_column_int64(agg, 0));
    sqlite3_bind_int64(chain, 3, sqlite3_column_int64(agg, 1));
    sqlite3_bind_int64(chain, 4, sqlite3_column_int64(agg, 2));
    sqlite3_bind_int64(chain, 5, sqlite3_column_int64(agg, 3));
    step(db, chain);
  }
  sqlite3_finalize(agg);
  sqlite3_stmt* vcpus = 0;
  if (sqlite3_prepare_v2(db, "INSERT INTO vcpus (vcpu, first_event, last_event, event_count) VALUES (?, ?, ?, ?)", -1,
                         &vcpus, 0) != SQLITE_OK)
    die(db, "prepare vcpus");
  for (int vcpu = 0; vcpu < 65536; ++vcpu) {
    if (vcpu_count[vcpu] == 0) continue;
    sqlite3_bind_int64(vcpus, 1, vcpu);
    sqlite3_bind_int64(vcpus, 2, vcpu_first[vcpu]);
    sqlite3_bind_int64(vcpus, 3, vcpu_last[vcpu]);
    sqlite3_bind_int64(vcpus, 4, vcpu_count[vcpu]);
    step(db, vcpus);
  }
  sqlite3_finalize(vcpus);
  if (sqlite3_exec(db, "COMMIT", 0, 0, 0) != SQLITE_OK) die(db, "vcpus");
  sqlite3_finalize(ev);
  sqlite3_finalize(evs);
  sqlite3_finalize(chain);
  if (!journal_off &&
      sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE", 0, 0, 0) != SQLITE_OK)
    die(db, "journal_mode");
  sqlite3_close(db);
  printf("%zu events\n", n);
  return 0;
}

int main(int argc, char** argv) {
  /* What schema/sqlite_db.cpp does before exitscope's first connection. */
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  if (argc >= 4 && strcmp(argv[1], "dump") == 0) return dump(argv[2], argv[3]);
  if (argc >= 4 && strcmp(argv[1], "write") == 0) {
    const int off = argc >= 6 && strcmp(argv[4], "--journal") == 0 && strcmp(argv[5], "off") == 0;
    return write_rows(argv[2], argv[3], off);
  }
  fprintf(stderr, "usage: sqlite_anchor dump REC.db ROWS.bin | write ROWS.bin OUT.db [--journal wal|off]\n");
  return 2;
}
