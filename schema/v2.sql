-- exitscope recording schema, version 2 (migration step v1 -> v2; a new file runs v1.sql then this).
--
-- v2 adds schema_history: one row per migration step applied to an existing recording, so a
-- migrated file says where it came from (a copy made by `exitscope migrate` or by opening an
-- older recording, or the original upgraded with --in-place). Files created at v2 have none.
CREATE TABLE schema_history (
  version INTEGER PRIMARY KEY,     -- schema version this step produced
  from_version INTEGER NOT NULL,   -- version before the step
  migrated_at TEXT NOT NULL,       -- ISO 8601 UTC
  tool_version TEXT NOT NULL,      -- exitscope version that migrated it
  source_file TEXT NOT NULL        -- absolute path of the file it was copied from; '' if migrated in place
);

PRAGMA user_version = 2;
