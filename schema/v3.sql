-- exitscope recording schema, version 3 (migration step v2 -> v3; a new file runs v1.sql, v2.sql, then this).
--
-- v3 lets `exitscope stats` read the chain figures from the chains table instead of walking
-- every chain's members (issue #21): each chain row carries what its raise -> delivery time and
-- its exit / reinjection counts need. A migrated v2 file has these columns NULL until its chains
-- are written again (replay::materialize_chains; a reader's migrated copy does it, see
-- replay/recording.cpp); `chain_rules` says whether they are there and which outcome rules
-- decided them.
ALTER TABLE chains ADD COLUMN event_word INTEGER;      -- original event, VM-entry interruption-info format
                                                       -- (bit 31 clear: no event named; vector/type above are then 0)
ALTER TABLE chains ADD COLUMN vcpu INTEGER;            -- vCPU of the root (first member when the root is missing)
ALTER TABLE chains ADD COLUMN raise_ns INTEGER;        -- time_ns of the root (first member when the root is missing)
ALTER TABLE chains ADD COLUMN delivered_ns INTEGER;    -- time_ns of the delivery that decided an outcome of
                                                       -- 'delivered' / 'delivered after reinjection'; NULL otherwise
ALTER TABLE chains ADD COLUMN vectoring_exits INTEGER; -- members that are VM exits (not nested exits) with valid
                                                       -- IDT-vectoring info (SDM Vol. 3C 28.2.4)
ALTER TABLE chains ADD COLUMN reinjections INTEGER;    -- members that are INJECT_REINJECTED decisions

-- Which chain rules wrote the chains table (one row, replaced with the table). A reader whose
-- rules differ (replay::kChainRulesVersion), or a file without the row (migrated from v2, or a
-- writer that stopped before its chains), does not trust the stored outcomes and walks the
-- chains instead.
-- (sessions.tool_version names the exitscope that wrote the recording.)
CREATE TABLE chain_rules (
  version INTEGER NOT NULL         -- replay::kChainRulesVersion of the writer
);

PRAGMA user_version = 3;
