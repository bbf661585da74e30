-- Core snapshots become partitions: core.<extract> is partitioned by as_of, one partition per loaded
-- file (core.<extract>_f<file_id>). A file is copied once, into a table of its own in staging; GX
-- validates that table, the quarantined rows are deleted from it, and loading attaches it in place of
-- the previous snapshot of its date. Before, every row was copied twice (staging, then an INSERT into
-- the indexed core table), which took more time than anything else at a million persons.
-- The shared staging tables go; each core table keeps a DEFAULT partition so that plain INSERTs (tests,
-- an operator's correction) still work. Indexes lose their leading as_of: a partition holds one date.

-- The night's views select from core (sql/night, rebuilt by every comparison): they would follow the
-- renamed tables and keep them from being dropped.
DROP SCHEMA IF EXISTS night CASCADE;

DO $$
DECLARE
    extract text;
    snapshot record;
    part text;
BEGIN
    FOREACH extract IN ARRAY ARRAY['assistance', 'deaths', 'residents', 'payments', 'enrollment', 'jobs',
                                   'pension_payments', 'training', 'registry'] LOOP
        EXECUTE format('DROP TABLE staging.%I', extract);
        EXECUTE format('ALTER TABLE core.%I RENAME TO %I', extract, extract || '_before_0007');
        EXECUTE format('CREATE TABLE core.%I (LIKE core.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS) '
                       'PARTITION BY LIST (as_of)', extract, extract || '_before_0007');
        EXECUTE format('CREATE TABLE core.%I PARTITION OF core.%I DEFAULT', extract || '_default', extract);
        FOR snapshot IN EXECUTE format('SELECT as_of, min(file_id) AS file_id FROM core.%I GROUP BY as_of',
                                       extract || '_before_0007') LOOP
            part := extract || '_f' || snapshot.file_id;
            EXECUTE format('CREATE TABLE core.%I PARTITION OF core.%I FOR VALUES IN (%L)', part, extract,
                           snapshot.as_of);
            EXECUTE format('INSERT INTO core.%I SELECT * FROM core.%I WHERE as_of = %L', part,
                           extract || '_before_0007', snapshot.as_of);
        END LOOP;
        EXECUTE format('DROP TABLE core.%I', extract || '_before_0007');
    END LOOP;
END
$$;

CREATE INDEX ON core.assistance (id_number, category, start_date);
CREATE INDEX ON core.deaths (id_number);
CREATE INDEX ON core.residents (id_number);
CREATE INDEX ON core.residents (name);
CREATE INDEX ON core.payments (serial_no);
CREATE INDEX ON core.payments (id_number);
CREATE INDEX ON core.enrollment (id_number);
CREATE INDEX ON core.jobs (id_number, job_type, start_date);
CREATE INDEX ON core.pension_payments (serial_no);
CREATE INDEX ON core.pension_payments (id_number);
CREATE INDEX ON core.training (id_number, trade, completion_date);
CREATE INDEX ON core.registry (id_number);
