-- exitscope recording schema, version 4 (migration step v3 -> v4; a new file runs v1.sql, v2.sql,
-- v3.sql, then this).
--
-- v4 makes a recording smaller (issue #18, BENCHMARKS.md "File size and memory: schema v4"):
--   - events.origin is NULL for an event in no chain (was 0), so the origin index can be partial
--     (schema/indexes.sql: WHERE origin IS NOT NULL; a query's `origin = ?` implies it, so
--     SQLite still uses the index for it). Readers read NULL as 0.
--   - guest_linear, idt_vectoring_error, instr_len, aux and aux64, which no query names and most
--     rows leave zero, are one column `extra`: NULL when all five are zero, else a blob (a byte
--     whose bits 0..4 say which of the five are nonzero, in that order, then each nonzero one as
--     an unsigned LEB128 number). One record-header byte instead of five (SQLite's record
--     format spends a header byte on every column, even NULL or 0). schema/event_row.cpp is
--     the only code that reads or writes it; es_pack_extra() is its SQL form, registered by
--     schema::migrate for this step.
--   - chain_events is gone: it held (events.origin, events.id) of every event in a chain, which
--     the origin index answers (`WHERE origin = ? ORDER BY id`), and nothing read it.
-- The table is rebuilt (SQLite cannot drop NOT NULL from a column); its indexes go with the old
-- table and schema::migrate builds the new set on a finished recording.
CREATE TABLE events_v4 (
  id INTEGER PRIMARY KEY,          -- es_record.id: unique, increasing
  kind INTEGER NOT NULL,           -- ES_KIND_*
  level INTEGER NOT NULL,          -- guest level the event is about (1 = L1, 2 = L2)
  hv_level INTEGER NOT NULL,       -- hypervisor level that observed / decided it (0 = L0, 1 = L1)
  vcpu INTEGER NOT NULL,           -- vCPU index
  time_ns INTEGER NOT NULL,        -- session time in ns (simulated for hv, trace clock otherwise)
  reason INTEGER NOT NULL,         -- full 32-bit exit reason / ES_DECISION_* / ES_END_* / ES_ERROR_* / ES_VIOLATION_*
  flags INTEGER NOT NULL,          -- ES_FLAG_*
  cause INTEGER NOT NULL,          -- id of the event that caused this one; 0 = none
  origin INTEGER,                  -- id of the chain root (original event); NULL = not in a chain
  rip INTEGER NOT NULL,            -- guest RIP (stored as signed 64-bit; read back as uint64)
  qualification INTEGER NOT NULL,  -- exit qualification (raw)
  guest_phys INTEGER NOT NULL,     -- guest-physical address
  intr_info INTEGER NOT NULL,      -- VM-exit interruption info (exits), VM-entry format otherwise (raw)
  intr_error INTEGER NOT NULL,     -- its error code
  idt_vectoring_info INTEGER NOT NULL,  -- IDT-vectoring information (exits; raw)
  code_id INTEGER REFERENCES code(id), -- instruction bytes at rip (ES_FLAG_BYTES_VALID), else NULL
  text TEXT,                       -- ES_KIND_CONSOLE: the characters bytes[0..aux); NULL otherwise
  extra BLOB                       -- guest_linear, idt_vectoring_error, instr_len, aux, aux64 (above); NULL = all 0
);
-- A file from a stranger need not hold what exitscope writes (RELIABILITY.md "Files from
-- strangers": its tables may lack our constraints): a NULL where v4 says NOT NULL becomes 0 (what
-- replay's reader made of it already), and a second row with an id already taken (or a NULL id)
-- gets the next free id, so such a file stays readable, every row kept, instead of failing the
-- step. (On a file exitscope wrote, ids are unique and the window costs no sort: rowid order.)
INSERT INTO events_v4 (id, kind, level, hv_level, vcpu, time_ns, reason, flags, cause, origin, rip,
                                 qualification, guest_phys, intr_info, intr_error, idt_vectoring_info, code_id, text,
                                 extra)
  SELECT CASE WHEN row_number() OVER (PARTITION BY id ORDER BY rowid) = 1 THEN CAST(id AS INTEGER) END, IFNULL(kind, 0), IFNULL(level, 0), IFNULL(hv_level, 0), IFNULL(vcpu, 0),
         IFNULL(time_ns, 0), IFNULL(reason, 0), IFNULL(flags, 0), IFNULL(cause, 0), NULLIF(origin, 0), IFNULL(rip, 0),
         IFNULL(qualification, 0), IFNULL(guest_phys, 0), IFNULL(intr_info, 0), IFNULL(intr_error, 0),
         IFNULL(idt_vectoring_info, 0), code_id, text,
         es_pack_extra(guest_linear, idt_vectoring_error, instr_len, aux, aux64)
  FROM events ORDER BY id;
DROP TABLE events;
ALTER TABLE events_v4 RENAME TO events;
DROP TABLE chain_events;

PRAGMA user_version = 4;
