-- Staging holds one file's rows between read and load; it is rebuilt from the archive after a crash,
-- so it need not be crash-safe. UNLOGGED skips the write-ahead log: COPY into staging is faster.

ALTER TABLE staging.assistance SET UNLOGGED;
ALTER TABLE staging.deaths SET UNLOGGED;
ALTER TABLE staging.residents SET UNLOGGED;
ALTER TABLE staging.payments SET UNLOGGED;
ALTER TABLE staging.enrollment SET UNLOGGED;
ALTER TABLE staging.jobs SET UNLOGGED;
ALTER TABLE staging.pension_payments SET UNLOGGED;
ALTER TABLE staging.training SET UNLOGGED;
ALTER TABLE staging.registry SET UNLOGGED;
