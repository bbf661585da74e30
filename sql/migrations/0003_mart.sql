-- Outputs of the nightly comparison: runs, freshness, findings with a life, feedback, indicators.
CREATE SCHEMA IF NOT EXISTS mart;

-- One row per night that was compared.
CREATE TABLE mart.runs (
    as_of        date PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    status       text NOT NULL DEFAULT 'running'   -- running | done | failed
);

-- Which snapshot of each extract a night used, and how old it was.
CREATE TABLE mart.freshness (
    as_of        date NOT NULL,
    department   text NOT NULL,
    extract      text NOT NULL,
    data_as_of   date,                 -- null: never received
    age_days     integer,
    stale        boolean NOT NULL,
    PRIMARY KEY (as_of, extract)
);

-- A finding's identity is (rule_code, subject_key, period): the same finding on the next night
-- is the same row. status is as of last_seen / resolved_on.
CREATE TABLE mart.findings (
    finding_id   bigserial PRIMARY KEY,
    rule_code    text NOT NULL,
    subject_key  text NOT NULL,        -- ID number, or payment / file-row key
    period       text NOT NULL DEFAULT '',
    severity     text NOT NULL,
    id_number    text,
    name         text,
    town         text,
    village      text,
    departments  text,
    detail       text,
    amount       numeric(14,2),
    data_hash    text,                 -- changes when the finding's data changes
    status       text NOT NULL,        -- new | open | resolved
    first_seen   date NOT NULL,
    last_seen    date NOT NULL,
    resolved_on  date,
    UNIQUE (rule_code, subject_key, period)
);
CREATE INDEX ON mart.findings (status);

-- What each night reported, so a night's output can be reproduced and trends drawn.
CREATE TABLE mart.finding_nights (
    as_of        date NOT NULL,
    finding_id   bigint NOT NULL REFERENCES mart.findings (finding_id),
    status       text NOT NULL,
    PRIMARY KEY (as_of, finding_id)
);

-- 核查结论 returned by case workers in their work lists.
CREATE TABLE mart.feedback (
    finding_id   bigint NOT NULL REFERENCES mart.findings (finding_id),
    verdict      text NOT NULL CHECK (verdict IN ('属实', '不属实', '已整改')),
    note         text,
    data_hash    text,                 -- the finding's data_hash when the verdict was given
    source_file  text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (finding_id, source_file)
);

-- Indicators per night, per scope (district or town name).
CREATE TABLE mart.indicators (
    as_of        date NOT NULL,
    indicator    text NOT NULL,
    scope        text NOT NULL,
    numerator    numeric,
    denominator  numeric,
    value        numeric,
    PRIMARY KEY (as_of, indicator, scope)
);
