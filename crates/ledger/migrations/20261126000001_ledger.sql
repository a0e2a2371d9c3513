-- The head of the log: the last sequence assigned. An append updates this one row first, so its
-- row lock serialises appenders (on PostgreSQL; SQLite has one writer anyway) and sequences are
-- assigned without gaps and commit in order: a reader that has seen sequence N has seen all below.
CREATE TABLE ledger_head (
    id BIGINT PRIMARY KEY,
    last_sequence BIGINT NOT NULL
);
INSERT INTO ledger_head (id, last_sequence) VALUES (1, 0);

-- Every event appended, by sequence. Rows are never updated or deleted. `data` is the payload as
-- JSON text (NULL when the producer sent none); times are microseconds since the Unix epoch.
CREATE TABLE events (
    sequence BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    source TEXT NOT NULL,
    subject TEXT NOT NULL,
    event_time BIGINT NOT NULL,
    data TEXT,
    trace_id TEXT NOT NULL,
    append_time BIGINT NOT NULL
);
CREATE INDEX events_by_subject ON events (subject, sequence);
