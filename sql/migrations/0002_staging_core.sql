-- Staging (one file's normalised rows, before validation) and core (validated rows, one snapshot
-- per extract and as-of date, so history stays queryable). Column names are the contract names
-- (include/contracts/*.yaml); id_number_raw / name_raw keep the values as received.
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS core;

-- 低保特困救助对象 (civil); key: id_number, category, start_date
CREATE TABLE staging.assistance (
    file_id bigint NOT NULL,
    row_number integer NOT NULL,
    as_of date NOT NULL,
    id_number text,
    id_number_raw text,
    name text,
    name_raw text,
    head_id_number text,
    head_id_number_raw text,
    category text,
    disability_grade text,
    start_date date,
    end_date date,
    town text,
    village text
);
CREATE INDEX ON staging.assistance (file_id, row_number);
CREATE TABLE core.assistance (
    as_of date NOT NULL,
    file_id bigint NOT NULL,
    row_number integer NOT NULL,
    id_number text,
    id_number_raw text,
    name text,
    name_raw text,
    head_id_number text,
    head_id_number_raw text,
    category text,
    disability_grade text,
    start_date date,
    end_date date,
    town text,
    village text
);
CREATE INDEX ON core.assistance (as_of, id_number, category, start_date);

-- 死亡人员信息 (civil); key: id_number
CREATE TABLE staging.deaths (
    file_id bigint NOT NULL,
    row_number integer NOT NULL,
    as_of date NOT NULL,
    id_number text,
    id_number_raw text,
    name text,
    name_raw text,
    death_date date,
    source text,
    registered_date date
);
CREATE INDEX ON staging.deaths (file_id, row_number);
CREATE TABLE core.deaths (
    as_of date NOT NULL,
    file_id bigint NOT NULL,
    row_number integer NOT NULL,
    id_number text,
    id_number_raw text,
    name text,
    name_raw text,
    death_date date,
    source text,
    registered_date date
);
CREATE INDEX ON core.deaths (as_of, id_number);

-- 人口基础信息 (civil); key: id_number
CREATE TABLE staging.residents (
    file_id bigint NOT NULL,
    row_number integer NOT NULL,
    as_of date NOT NULL,
    id_number text,
    id_number_raw text,
    name text,
    name_raw text,
    sex text,
    birth_date date,
    ethnicity text,
    hukou_no text,
    relation text,
    town text,
    village text,
    status text
);
CREATE INDEX ON staging.residents (file_id, row_number);
CREATE TABLE core.residents (
    as_of date NOT NULL,
    file_id bigint NOT NULL,
    row_number integer NOT NULL,
    id_number text,
    id_number_raw text,
    name text,
    name_raw text,
    sex text,
    birth_date date,
    ethnicity text,
    hukou_no text,
    relation text,
    town text,
    village text,
    status text
);
CREATE INDEX ON core.residents (as_of, id_number);

-- 惠民惠农补贴发放明细 (finance); key: serial_no
CREATE TABLE staging.payments (
    file_id bigint NOT NULL,
    row_number integer NOT NULL,
    as_of date NOT NULL,
    serial_no text,
    batch_no text,
    id_number text,
    id_number_raw text,
    name text,
    name_raw text,
    item text,
    period date,
    amount numeric(14,2),
    paid_date date,
    bank_account text,
    town text
);
CREATE INDEX ON staging.payments (file_id, row_number);
CREATE TABLE core.payments (
    as_of date NOT NULL,
    file_id bigint NOT NULL,
    row_number integer NOT NULL,
    serial_no text,
    batch_no text,
    id_number text,
    id_number_raw text,
    name text,
    name_raw text,
    item text,
    period date,
    amount numeric(14,2),
    paid_date date,
    bank_account text,
    town text
);
CREATE INDEX ON core.payments (as_of, serial_no);
CREATE INDEX ON core.payments (as_of, id_number);

-- 城乡居民养老保险参保信息 (hrss); key: id_number
CREATE TABLE staging.enrollment (
    file_id bigint NOT NULL,
    row_number integer NOT NULL,
    as_of date NOT NULL,
    person_no text,
    id_number text,
    id_number_raw text,
    name text,
    name_raw text,
    enrol_status text,
    enrol_date date,
    contribution_level numeric(14,2),
    subsidy_category text,
    subsidy_amount_year numeric(14,2),
    benefit_status text,
    benefit_start_month date,
    monthly_pension numeric(14,2),
    town text,
    village text
);
CREATE INDEX ON staging.enrollment (file_id, row_number);
CREATE TABLE core.enrollment (
    as_of date NOT NULL,
    file_id bigint NOT NULL,
    row_number integer NOT NULL,
    person_no text,
    id_number text,
    id_number_raw text,
    name text,
    name_raw text,
    enrol_status text,
    enrol_date date,
    contribution_level numeric(14,2),
    subsidy_category text,
    subsidy_amount_year numeric(14,2),
    benefit_status text,
    benefit_start_month date,
    monthly_pension numeric(14,2),
    town text,
    village text
);
CREATE INDEX ON core.enrollment (as_of, id_number);

-- 就业登记 (hrss); key: id_number, job_type, start_date
CREATE TABLE staging.jobs (
    file_id bigint NOT NULL,
    row_number integer NOT NULL,
    as_of date NOT NULL,
    id_number text,
    id_number_raw text,
    name text,
    name_raw text,
    job_type text,
    employer text,
    position text,
    start_date date,
    end_date date,
    monthly_pay numeric(14,2),
    town text
);
CREATE INDEX ON staging.jobs (file_id, row_number);
CREATE TABLE core.jobs (
    as_of date NOT NULL,
    file_id bigint NOT NULL,
    row_number integer NOT NULL,
    id_number text,
    id_number_raw text,
    name text,
    name_raw text,
    job_type text,
    employer text,
    position text,
    start_date date,
    end_date date,
    monthly_pay numeric(14,2),
    town text
);
CREATE INDEX ON core.jobs (as_of, id_number, job_type, start_date);

-- 养老保险待遇发放明细 (hrss); key: serial_no
CREATE TABLE staging.pension_payments (
    file_id bigint NOT NULL,
    row_number integer NOT NULL,
    as_of date NOT NULL,
    serial_no text,
    person_no text,
    id_number text,
    id_number_raw text,
    name text,
    name_raw text,
    month date,
    amount numeric(14,2)
);
CREATE INDEX ON staging.pension_payments (file_id, row_number);
CREATE TABLE core.pension_payments (
    as_of date NOT NULL,
    file_id bigint NOT NULL,
    row_number integer NOT NULL,
    serial_no text,
    person_no text,
    id_number text,
    id_number_raw text,
    name text,
    name_raw text,
    month date,
    amount numeric(14,2)
);
CREATE INDEX ON core.pension_payments (as_of, serial_no);
CREATE INDEX ON core.pension_payments (as_of, id_number);

-- 职业技能培训 (hrss); key: id_number, trade, completion_date
CREATE TABLE staging.training (
    file_id bigint NOT NULL,
    row_number integer NOT NULL,
    as_of date NOT NULL,
    id_number text,
    id_number_raw text,
    name text,
    name_raw text,
    trade text,
    institution text,
    completion_date date,
    qualified boolean,
    training_subsidy numeric(14,2),
    travel_subsidy numeric(14,2)
);
CREATE INDEX ON staging.training (file_id, row_number);
CREATE TABLE core.training (
    as_of date NOT NULL,
    file_id bigint NOT NULL,
    row_number integer NOT NULL,
    id_number text,
    id_number_raw text,
    name text,
    name_raw text,
    trade text,
    institution text,
    completion_date date,
    qualified boolean,
    training_subsidy numeric(14,2),
    travel_subsidy numeric(14,2)
);
CREATE INDEX ON core.training (as_of, id_number, trade, completion_date);

-- 建档立卡贫困人口 (poverty); key: id_number
CREATE TABLE staging.registry (
    file_id bigint NOT NULL,
    row_number integer NOT NULL,
    as_of date NOT NULL,
    household_no text,
    head_id_number text,
    head_id_number_raw text,
    id_number text,
    id_number_raw text,
    name text,
    name_raw text,
    sex text,
    relation text,
    household_type text,
    poverty_status text,
    exit_year integer,
    registered_year integer,
    is_student boolean,
    labour_ability text,
    town text,
    village text
);
CREATE INDEX ON staging.registry (file_id, row_number);
CREATE TABLE core.registry (
    as_of date NOT NULL,
    file_id bigint NOT NULL,
    row_number integer NOT NULL,
    household_no text,
    head_id_number text,
    head_id_number_raw text,
    id_number text,
    id_number_raw text,
    name text,
    name_raw text,
    sex text,
    relation text,
    household_type text,
    poverty_status text,
    exit_year integer,
    registered_year integer,
    is_student boolean,
    labour_ability text,
    town text,
    village text
);
CREATE INDEX ON core.registry (as_of, id_number);
