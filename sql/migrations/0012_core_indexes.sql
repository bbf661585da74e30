-- Core indexes no query uses. Every night's queries read core through the night's views (sql/night,
-- sql/rules, sql/indicators) and join by hash; EXPLAIN on a 1 M-person warehouse shows index scans of
-- core only for assistance (EM01), residents(name) (ID01), and registry, payments, enrollment and
-- jobs by ID number (ID07's few outsiders). The others were built at every load for nothing: at 1 M
-- persons pension_payments(id_number) took 8.1 s and pension_payments(serial_no) 2.7 s
-- (docs/benchmark.md). ID07 then hashes the pension payments instead (about 2 s more, on the rules'
-- second connection).
DROP INDEX IF EXISTS core.deaths_id_number_idx;
DROP INDEX IF EXISTS core.residents_id_number_idx;
DROP INDEX IF EXISTS core.payments_serial_no_idx;
DROP INDEX IF EXISTS core.pension_payments_serial_no_idx;
DROP INDEX IF EXISTS core.pension_payments_id_number_idx;
DROP INDEX IF EXISTS core.training_id_number_trade_completion_date_idx;
