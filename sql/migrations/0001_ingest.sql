-- Bookkeeping of every dropped file, its rejected rows and its validation results.
CREATE SCHEMA IF NOT EXISTS ingest;

-- One row per file seen in landing/, whatever became of it.
CREATE TABLE ingest.files (
    file_id          bigserial PRIMARY KEY,
    department       text NOT NULL,
    extract          text,                    -- null when the name did not match any contract
    as_of            date,
    file_name        text NOT NULL,
    sha256           text,
    size_bytes       bigint,
    mtime_ns         bigint,                  -- with name, size and sha256: "this very file was seen"
    archive_path     text,
    format           text,
    encoding         text,
    header_mapping   jsonb,
    received_at      timestamptz NOT NULL DEFAULT now(),
    -- loaded | duplicate | rejected | superseded
    status           text NOT NULL,
    reason           text,                    -- Chinese, for the receipt, when rejected or duplicate
    rows_received    integer,
    rows_loaded      integer,
    rows_quarantined integer,
    warnings         jsonb NOT NULL DEFAULT '[]'::jsonb,
    CONSTRAINT files_reconcile CHECK (
        status <> 'loaded' OR rows_received = rows_loaded + rows_quarantined)
);
CREATE INDEX ON ingest.files (extract, as_of);
CREATE INDEX ON ingest.files (sha256);

-- Every rejected row, with the whole row as received: nothing is lost.
CREATE TABLE ingest.quarantine (
    file_id     bigint NOT NULL REFERENCES ingest.files (file_id),
    row_number  integer NOT NULL,
    column_name text,
    value_raw   text,
    rule        text NOT NULL,               -- ID01, ID02, ID04, an expectation type, ROW (bad line) …
    reason      text NOT NULL,               -- plain Chinese with what to do
    row_raw     jsonb
);
CREATE INDEX ON ingest.quarantine (file_id);

-- Great Expectations results per file and expectation (summary counts only).
CREATE TABLE ingest.validation_results (
    file_id          bigint NOT NULL REFERENCES ingest.files (file_id),
    suite            text NOT NULL,
    expectation      text NOT NULL,
    column_name      text,
    success          boolean NOT NULL,
    unexpected_count bigint,
    element_count    bigint,
    result           jsonb
);
