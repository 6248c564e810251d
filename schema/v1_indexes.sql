-- Indexes of schema v1, built once at the end of a recording (bulk inserts stay cheap).
CREATE INDEX IF NOT EXISTS events_origin ON events(origin, id);
CREATE INDEX IF NOT EXISTS events_kind_reason ON events(kind, reason);
CREATE INDEX IF NOT EXISTS events_time ON events(time_ns);
CREATE INDEX IF NOT EXISTS events_vcpu ON events(vcpu, id);
CREATE INDEX IF NOT EXISTS events_cause ON events(cause);
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
