-- History by change (crosscheck.history): the latest snapshots of each extract stay whole partitions of
-- core.<extract>; older ones are folded into history.<extract> as row versions valid from the first
-- snapshot that held the row to the first that did not (valid_to, exclusive; NULL: still held), and
-- their partitions dropped. A year then costs what changed, not a copy per night.
CREATE SCHEMA IF NOT EXISTS history;

-- Each folded snapshot: which file it was, and what restores its line numbers exactly (the line
-- numbers between first_row and last_row that the partition did not hold: quarantined lines).
CREATE TABLE history.snapshots (
    extract      text NOT NULL,
    as_of        date NOT NULL,
    file_id      bigint NOT NULL,
    rows         bigint NOT NULL,
    first_row    integer,
    last_row     integer,
    missing_rows integer[] NOT NULL DEFAULT '{}',
    folded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (extract, as_of)
);

-- The rule, suite and contract files a night ran with, once per fingerprint (the hash of them all).
CREATE TABLE history.rule_sets (
    fingerprint text PRIMARY KEY,
    files       jsonb NOT NULL,          -- {relative path: text}
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- Each night as it was set up: its rules, its parameters, the snapshot (file) of each extract it read,
-- and when (the verdicts received before then are the ones it knew).
CREATE TABLE history.nights (
    as_of       date PRIMARY KEY,
    fingerprint text NOT NULL REFERENCES history.rule_sets (fingerprint),
    params      jsonb NOT NULL,
    files       jsonb NOT NULL,          -- {extract: file_id or null}
    prepared_at timestamptz NOT NULL
);

-- One table of row versions per extract: the extract's columns (not as_of, file_id and the line
-- number, which history.snapshots restores), the row's hash and occurrence (identical rows of one
-- snapshot are told apart by their order), its place in the file's order, and its validity.
DO $$
DECLARE
    extract text;
BEGIN
    FOR extract IN SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'core' LOOP
        EXECUTE format('CREATE TABLE history.%I (LIKE core.%I)', extract, extract);
        EXECUTE format('ALTER TABLE history.%I DROP COLUMN as_of, DROP COLUMN file_id, DROP COLUMN row_number, '
                       'ADD COLUMN row_hash uuid NOT NULL, ADD COLUMN occurrence integer NOT NULL, '
                       'ADD COLUMN pos numeric NOT NULL, ADD COLUMN valid_from date NOT NULL, '
                       'ADD COLUMN valid_to date', extract);
        -- the open versions are what each fold compares the next snapshot with
        EXECUTE format('CREATE INDEX ON history.%I (row_hash, occurrence) WHERE valid_to IS NULL', extract);
    END LOOP;
END
$$;

-- Archived files: compressed (archive_path then names the .gz) and, past the department's retention,
-- removed once their rows are in history; the ingest.files row (the receipt's record) stays.
ALTER TABLE ingest.files ADD COLUMN archive_removed_at timestamptz;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'crosscheck_loader') THEN
        GRANT USAGE, CREATE ON SCHEMA history TO crosscheck_loader;
        GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA history TO crosscheck_loader;
        ALTER DEFAULT PRIVILEGES IN SCHEMA history GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE
            ON TABLES TO crosscheck_loader;
    END IF;
END
$$;
