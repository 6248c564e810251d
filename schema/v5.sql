-- exitscope recording schema, version 5 (migration step v4 -> v5; a new file runs v1.sql .. v4.sql,
-- then this). No table changes: v5 is the index set of schema/indexes.sql whose events_kind_reason
-- is one integer, (kind << 32) | (reason & 0xFFFFFFFF) (issue #18, BENCHMARKS.md "One key for kind and reason").
-- Building the two-column index was most of the index build's time (SQLite's sorter compares a
-- key past its first field field by field; one integer it compares directly). The old index has
-- the same name, so it is dropped here and schema::migrate builds the new one on a finished
-- recording (a new file has no index yet: the DROP does nothing).
DROP INDEX IF EXISTS events_kind_reason;

PRAGMA user_version = 5;
