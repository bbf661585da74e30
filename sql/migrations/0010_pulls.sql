-- Pull sources (crosscheck.pull): every attempt to fetch an extract from a department's database or
-- exchange server, whatever came of it. A pulled file becomes a drop and gets its row in ingest.files
-- like any other; this table says where it came from (connection id and remote path or query name,
-- never credentials) and records the nights a source had nothing for the date (status 'empty').
CREATE TABLE ingest.pulls (
    pull_id      bigserial PRIMARY KEY,
    department   text NOT NULL,
    extract      text NOT NULL,
    as_of        date NOT NULL,
    source       text NOT NULL CHECK (source IN ('sftp', 'sql')),
    conn_id      text NOT NULL,
    remote       text NOT NULL,              -- the remote path, or the view / query name
    status       text NOT NULL CHECK (status IN ('pulled', 'empty', 'failed')),
    file_name    text,                       -- the drop written into landing/<department>/
    sha256       text,
    rows_pulled  bigint,                     -- database pulls
    size_bytes   bigint,
    reason       text,                       -- Chinese, when empty or failed
    pulled_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON ingest.pulls (department, as_of);
CREATE INDEX ON ingest.pulls (department, file_name, sha256);

-- The latest attempt per extract and date, for the report (no personal data), readable from mart.
CREATE VIEW mart.pull_status AS
SELECT DISTINCT ON (extract, as_of) department, extract, as_of, source, conn_id, remote, status, file_name,
       rows_pulled, size_bytes, reason, pulled_at
FROM ingest.pulls
ORDER BY extract, as_of, pull_id DESC;
