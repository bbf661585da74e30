-- Held files (issue 14): a file whose quarantine share or row count departs grossly from its extract's
-- recent history is held instead of loaded. Its rows stay in its own staging table
-- (staging.<extract>_f<file_id>) and its rejected rows in ingest.quarantine, so that
-- `crosscheck release FILE_ID` loads exactly what would have been loaded.

-- The figures behind the decision (this file vs. the recent history), for the receipt and the log.
ALTER TABLE ingest.files ADD COLUMN hold jsonb;
-- When an operator released a held file (it is then loaded like any other).
ALTER TABLE ingest.files ADD COLUMN released_at timestamptz;

-- The night shows a held file next to the older snapshot it uses instead.
ALTER TABLE mart.freshness ADD COLUMN held_file_id bigint;
ALTER TABLE mart.freshness ADD COLUMN held_as_of date;
