-- Night set-up, step 1: an empty `night` schema with tonight's parameters and extract list.
-- crosscheck.compare fills night.params / night.extracts, then creates one view per extract
-- (night.<extract> = the core snapshot chosen for tonight), then runs the other sql/night files.
DROP SCHEMA IF EXISTS night CASCADE;
CREATE SCHEMA night;

-- Exactly one row: the as-of date D and everything rules derive from it and from settings.
CREATE TABLE night.params (
    as_of             date PRIMARY KEY,
    year              integer NOT NULL,   -- Y, the calendar year of D
    year_start        date NOT NULL,      -- Y-01-01
    year_end          date NOT NULL,      -- Y-12-01 (the last month of Y)
    last_full_month   date NOT NULL,      -- first day of the month before D's month
    enrol_min_age     integer NOT NULL,   -- 16
    pension_min_age   integer NOT NULL,   -- 60
    poverty_active    boolean NOT NULL,   -- 代缴 categories enabled (settings.subsidy_categories)
    dibao             boolean NOT NULL,
    tekun             boolean NOT NULL,
    severe_disability boolean NOT NULL,
    stale_after_days  integer NOT NULL,
    night_id          text NOT NULL       -- this set-up; the partitions of a night check it
);

-- Which snapshot of each extract tonight uses (also stored in mart.freshness).
CREATE TABLE night.extracts (
    extract      text PRIMARY KEY,
    department   text NOT NULL,         -- civil | poverty | finance | hrss
    dept_zh      text NOT NULL,         -- 民政 | 扶贫 | 财政 | 人社
    title        text NOT NULL,
    data_as_of   date,                  -- null: never received
    age_days     integer,
    stale        boolean NOT NULL
);

-- The departments (include/departments.yaml), in their order: 民政, 扶贫, 财政, 人社.
CREATE TABLE night.departments (
    code      text PRIMARY KEY,
    short     text NOT NULL UNIQUE,
    full_name text NOT NULL,
    position  integer NOT NULL
);

-- The departments a finding involves (short names), de-duplicated, in night.departments' order
-- (a name it does not know last). Replaces mart.dept_list, whose order was written in its body.
CREATE FUNCTION night.dept_list(depts text[]) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT string_agg(x.d, ',' ORDER BY coalesce(n.position, 2147483647), x.d)
    FROM (SELECT DISTINCT unnest(depts) AS d) x LEFT JOIN night.departments n ON n.short = x.d
    WHERE x.d IS NOT NULL
$$;

-- The deployment's towns and their districts (include/reference/, setting `districts`).
CREATE TABLE night.town_districts (
    town          text PRIMARY KEY,
    town_code     text NOT NULL,
    district_code text NOT NULL,
    district      text NOT NULL
);

-- What each partition of the night found (crosscheck.compare.evaluate_partition); gathered into
-- night.findings and mart.indicators when every partition is done.
CREATE TABLE night.finding_parts (
    partition_key text NOT NULL,
    rule_code     text NOT NULL,
    subject_key   text NOT NULL,
    period        text NOT NULL,
    id_number     text,
    name          text,
    town          text,
    village       text,
    departments   text,
    detail        text,
    amount        numeric(14,2)
);
CREATE TABLE night.indicator_parts (
    partition_key text NOT NULL,
    indicator     text NOT NULL,
    town          text,
    numerator     numeric,
    denominator   numeric
);
