-- Indexes of the current schema (v5), built once at the end of a recording (bulk inserts stay
-- cheap) by schema::create_indexes, and by schema::migrate on a finished recording it migrates.
-- An index on (x) holds (x, rowid) and keeps equal keys in id order, so `WHERE x = ? ORDER BY id`
-- needs no sort; naming id as well (v1-v3: events_origin (origin, id), events_vcpu (vcpu, id))
-- stored the id twice in every entry (BENCHMARKS.md "File size and memory: schema v4").
-- The time index is not here: schema/time_index.sql, built only for a recording whose times do
-- not follow its ids (schema::create_indexes).
-- Events in a chain only (origin is NULL for the others, schema/v4.sql): `origin = ?`,
-- `origin != 0` and `origin BETWEEN ? AND ?` imply `origin IS NOT NULL`, so SQLite uses it for them.
CREATE INDEX IF NOT EXISTS events_origin ON events(origin) WHERE origin IS NOT NULL;
-- kind and reason as one integer key, (kind << 32) | (reason & 0xFFFFFFFF) (kind is 16 bits, reason
-- 32: the key orders as the pair does; the mask keeps a file's out-of-range reason out of the kind
-- bits, so a kind's keys are exactly its rows). v1-v4 indexed the two columns, and that index took 60 - 70 % of the
-- whole build: with few distinct pairs SQLite's sorter finds the first column equal on almost every
-- comparison and compares the rest field by field; one integer it compares directly (BENCHMARKS.md
-- "One key for kind and reason", schema/v5.sql). SQLite uses it only for a query that writes the
-- same expression: schema/kind_reason.h has the terms (`kind = ?` is a range of keys).
CREATE INDEX IF NOT EXISTS events_kind_reason ON events((kind << 32) | (reason & 4294967295));
-- Events of vCPUs other than 0 only: a one-vCPU recording (every hv scenario but the SMP ones,
-- most trace.dat imports) has none, and there the index held every row to select all or none
-- (9 B an event, BENCHMARKS.md "Index set by measurement"). vCPU 0's events are read by a scan
-- of the table, which is what reading all of a one-vCPU recording through an index costs
-- anyway. As for the cause index, a query must name the condition: `vcpu = ? AND vcpu != 0`
-- (replay/recording.cpp, replay/stats.cpp, replay/export, the lane walk in replay/browse.cpp).
CREATE INDEX IF NOT EXISTS events_vcpu ON events(vcpu) WHERE vcpu != 0;
-- Events with a cause only: an import links few events to a cause (5 % of the trace.dat import in
-- BENCHMARKS.md "Index set by measurement"), a recording almost all. SQLite uses a partial index
-- only for a query whose WHERE holds its condition as a term (a bound `cause = ?` does not imply
-- it), so every lookup by cause says `cause != 0` too (replay/chains.cpp, replay/browse.cpp).
CREATE INDEX IF NOT EXISTS events_cause ON events(cause) WHERE cause != 0;
-- Exits and entries (and kvm_msr records, ES_KIND_CONTEXT 11 / ES_CONTEXT_MSR 0x104) with the
-- columns `exitscope stats` reads, in id order: its exit pass reads this index alone instead of
-- the whole events table (issue #21, BENCHMARKS.md "Stats"). Kinds: 1 VM_EXIT, 2 VM_ENTRY,
-- 6 NESTED_EXIT, 12 NESTED_ENTRY. replay/stats.cpp repeats this WHERE clause word for word:
-- SQLite uses a partial index only for a query whose WHERE names its condition (or one side of
-- its OR), and tests the query's term on every row unless it is the whole condition (an IN
-- list through a temporary b-tree: the bare read at 1 M events took 0.14 s that way, 0.12 s
-- with the whole condition).
CREATE INDEX IF NOT EXISTS events_exit_entry ON events(id, kind, level, vcpu, time_ns, reason, flags, qualification, guest_phys)
  WHERE kind = 1 OR kind = 2 OR kind = 6 OR kind = 12 OR (kind = 11 AND reason = 260);
