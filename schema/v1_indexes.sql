-- Indexes of schema v1, built once at the end of a recording (bulk inserts stay cheap).
CREATE INDEX IF NOT EXISTS events_origin ON events(origin, id);
CREATE INDEX IF NOT EXISTS events_kind_reason ON events(kind, reason);
CREATE INDEX IF NOT EXISTS events_time ON events(time_ns);
CREATE INDEX IF NOT EXISTS events_vcpu ON events(vcpu, id);
CREATE INDEX IF NOT EXISTS events_cause ON events(cause);
