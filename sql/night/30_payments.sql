-- Night set-up: payments with each key once (a row that arrives twice is the same row), and the
-- month coverage of public-welfare jobs and assistance cases.

-- Finance "one card" payments, one row per 流水号.
CREATE TABLE night.paid AS
SELECT DISTINCT ON (serial_no) serial_no, id_number, name, item, period, amount, paid_date, town
FROM night.payments
WHERE id_number IS NOT NULL
ORDER BY serial_no, row_number;
CREATE INDEX ON night.paid (id_number);

-- HR pension payments, one row per 流水号.
CREATE TABLE night.pension_paid AS
SELECT DISTINCT ON (serial_no) serial_no, id_number, name, month, amount
FROM night.pension_payments
WHERE id_number IS NOT NULL
ORDER BY serial_no, row_number;

-- Finance 城乡居民养老保险代缴 in Y (by 所属期间), per person.
CREATE TABLE night.subsidy_paid AS
SELECT p.id_number, sum(p.amount) AS amount, count(*) AS payments
FROM night.paid p CROSS JOIN night.params pr
WHERE p.item = '城乡居民养老保险代缴' AND date_trunc('year', p.period) = pr.year_start
GROUP BY p.id_number;
ALTER TABLE night.subsidy_paid ADD PRIMARY KEY (id_number);

-- Month ranges: a job or case covers a month when the month lies between its start and end
-- months, inclusive; no end date = still open.
CREATE TABLE night.coverage AS
SELECT id_number, '公益性岗位' AS kind,
       date_trunc('month', start_date)::date AS from_month,
       date_trunc('month', end_date)::date AS to_month
FROM night.jobs
WHERE job_type IN ('扶贫公益性岗位', '临时公益性岗位')
UNION ALL
SELECT id_number, category, date_trunc('month', start_date)::date, date_trunc('month', end_date)::date
FROM night.assistance
WHERE category IN ('城乡低保', '特困供养');
CREATE INDEX ON night.coverage (id_number, kind);
