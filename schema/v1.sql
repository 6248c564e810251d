-- exitscope recording schema, version 1.
--
-- One recording file holds one session (sessions.id = 1). Every record the probe bus
-- delivered is one row of `events`; raw hardware words are stored as INTEGER exactly as the
-- VMCS held them and are decoded by hv/arch in replay, never in SQL.
-- Indexes are created by the recorder at the end of a recording (see finish_indexes in
-- schema/migrations.cpp), not here, so bulk inserts stay cheap.

-- One row per recording session.
CREATE TABLE sessions (
  id INTEGER PRIMARY KEY,          -- session id (1 in a file written by the recorder)
  source TEXT NOT NULL,            -- 'hv' (built-in VT-x model), 'kvm' (eBPF on a KVM host), 'import' (trace file)
  scenario TEXT NOT NULL,          -- scenario name (hv) or a free label; '' if none
  guest_path TEXT NOT NULL,        -- guest image path as given by the user; '' if none
  guest_hash TEXT NOT NULL,        -- 'sha256:<64 hex digits>' of the guest image; '' if none
  policy TEXT NOT NULL,            -- reinjection policy name (hv), '' otherwise
  tool_version TEXT NOT NULL,      -- exitscope version that wrote the recording
  host TEXT NOT NULL,              -- uname: sysname nodename release version machine
  kernel TEXT NOT NULL,            -- uname release (kernel version) of the recording host
  command_line TEXT NOT NULL,      -- the command line that started the recording
  config_json TEXT NOT NULL,       -- free-form configuration as JSON text ('{}' if none)
  started_at TEXT NOT NULL,        -- wall-clock start, ISO 8601 UTC ('2026-01-02T03:04:05Z')
  ended_at TEXT,                   -- wall-clock end, ISO 8601 UTC; NULL while recording / after a crash
  complete INTEGER NOT NULL DEFAULT 0, -- 1 once the recorder finished cleanly; 0 = incomplete (crash, kill)
  end_reason INTEGER,              -- ES_END_* of the run (0 guest exit, 1 limit, 2 triple fault,
                                   -- 3 internal error, 4 stopped); NULL if unknown
  end_detail TEXT,                 -- one line saying why the run ended, free text
  event_count INTEGER NOT NULL DEFAULT 0,   -- rows written to `events`
  exit_count INTEGER NOT NULL DEFAULT 0,    -- events with kind = 1 (VM exit)
  records_dropped INTEGER NOT NULL DEFAULT 0, -- records the recorder could not keep (drop mode only)
  source_dropped INTEGER NOT NULL DEFAULT 0   -- records the source lost before the recorder
                                              -- (e.g. BPF ring buffer full), as reported by it
);

-- One row per vCPU seen in the recording (filled at finish).
CREATE TABLE vcpus (
  vcpu INTEGER PRIMARY KEY,        -- es_record.vcpu
  first_event INTEGER NOT NULL,    -- id of its first event
  last_event INTEGER NOT NULL,     -- id of its last event
  event_count INTEGER NOT NULL     -- number of its events
);

-- Guest instruction bytes seen at exit RIPs, deduplicated on (rip, bytes).
CREATE TABLE code (
  id INTEGER PRIMARY KEY,          -- referenced by events.code_id
  rip INTEGER NOT NULL,            -- guest RIP the bytes were read at
  bytes BLOB NOT NULL,             -- instruction bytes (1..16)
  UNIQUE (rip, bytes)
);

-- One row per es_record (probes/include/exitscope/record.h).
CREATE TABLE events (
  id INTEGER PRIMARY KEY,          -- es_record.id: unique, increasing
  kind INTEGER NOT NULL,           -- ES_KIND_*
  level INTEGER NOT NULL,          -- guest level the event is about (1 = L1, 2 = L2)
  hv_level INTEGER NOT NULL,       -- hypervisor level that observed / decided it (0 = L0, 1 = L1)
  vcpu INTEGER NOT NULL,           -- vCPU index
  time_ns INTEGER NOT NULL,        -- session time in ns (simulated for hv, trace clock otherwise)
  reason INTEGER NOT NULL,         -- full 32-bit exit reason / ES_DECISION_* / ES_END_* / ES_ERROR_* / ES_VIOLATION_*
  flags INTEGER NOT NULL,          -- ES_FLAG_*
  cause INTEGER NOT NULL,          -- id of the event that caused this one; 0 = none
  origin INTEGER NOT NULL,         -- id of the chain root (original event); 0 = not in a chain
  rip INTEGER NOT NULL,            -- guest RIP (stored as signed 64-bit; read back as uint64)
  qualification INTEGER NOT NULL,  -- exit qualification (raw)
  guest_linear INTEGER NOT NULL,   -- guest-linear address / CR2
  guest_phys INTEGER NOT NULL,     -- guest-physical address
  intr_info INTEGER NOT NULL,      -- VM-exit interruption info (exits), VM-entry format otherwise (raw)
  intr_error INTEGER NOT NULL,     -- its error code
  idt_vectoring_info INTEGER NOT NULL,  -- IDT-vectoring information (exits; raw)
  idt_vectoring_error INTEGER NOT NULL, -- IDT-vectoring error code
  instr_len INTEGER NOT NULL,      -- VM-exit / VM-entry instruction length
  aux INTEGER NOT NULL,            -- kind-specific (byte count, I/O value, ...)
  aux64 INTEGER NOT NULL,          -- kind-specific 64-bit value
  code_id INTEGER REFERENCES code(id), -- instruction bytes at rip (ES_FLAG_BYTES_VALID), else NULL
  text TEXT                        -- ES_KIND_CONSOLE: the characters bytes[0..aux); NULL otherwise
);

-- Event chains, materialized by replay (replay/chains.cpp). A chain is every event with the
-- same events.origin; its id is that origin (the root event id).
CREATE TABLE chains (
  id INTEGER PRIMARY KEY,          -- = root event id = events.origin of every member
  root_event INTEGER NOT NULL,     -- id of the root event (normally an ES_KIND_RAISE record)
  vector INTEGER NOT NULL,         -- vector of the original event
  type INTEGER NOT NULL,           -- interruption type of the original event (0 IRQ, 2 NMI, 3 HW exception, ...)
  level INTEGER NOT NULL,          -- guest level of the root event
  outcome TEXT NOT NULL,           -- 'delivered', 'promoted to #DF', 'triple fault', 'dropped by policy',
                                   -- 'pending at end', 'lost'
  first_event INTEGER NOT NULL,    -- lowest event id in the chain
  last_event INTEGER NOT NULL,     -- highest event id in the chain
  event_count INTEGER NOT NULL,    -- number of events in the chain
  inferred INTEGER NOT NULL,       -- 1 if any link was inferred (ES_FLAG_INFERRED) or the root is missing
  interrupts_chain INTEGER         -- id of the chain whose delivery this chain's root interrupted; NULL if none
);

-- Membership of events in chains (ordered by event id).
CREATE TABLE chain_events (
  chain_id INTEGER NOT NULL REFERENCES chains(id),
  event_id INTEGER NOT NULL REFERENCES events(id),
  PRIMARY KEY (chain_id, event_id)
) WITHOUT ROWID;

-- User notes attached to events or chains (GUI / CLI).
CREATE TABLE annotations (
  id INTEGER PRIMARY KEY,
  event_id INTEGER REFERENCES events(id), -- annotated event, or NULL
  chain_id INTEGER REFERENCES chains(id), -- annotated chain, or NULL
  author TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL,        -- ISO 8601 UTC
  text TEXT NOT NULL
);

PRAGMA user_version = 1;
