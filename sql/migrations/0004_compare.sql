-- The nightly comparison (crosscheck.compare): the `night` schema, per-rule GX checks, and two
-- small helpers the rule SQL uses. The objects inside `night` are rebuilt by every compare run
-- (sql/night/*.sql); only the schema is created here.
CREATE SCHEMA IF NOT EXISTS night;

-- One row per night and rule: how many findings the rule's SQL produced, and what the Great
-- Expectations suite (expectations/rules/*.json) observed running the same SQL.
CREATE TABLE mart.rule_checks (
    as_of        date NOT NULL,
    rule_code    text NOT NULL,
    severity     text NOT NULL,
    sql_file     text NOT NULL,
    found        integer NOT NULL,       -- rows the rule produced tonight (materialised)
    gx_success   boolean,                -- null: GX not run
    gx_count     integer,                -- GX observed_value (unexpected rows)
    agrees       boolean,                -- gx_count = found
    PRIMARY KEY (as_of, rule_code)
);

-- A date from text, or NULL when the text is not a date (never an error): used to read birth
-- dates out of unusable ID numbers and raw cells of quarantined rows.
CREATE OR REPLACE FUNCTION mart.try_date(value text) RETURNS date
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    parts text[] := regexp_match(coalesce(value, ''), '^\s*(\d{4})[-/.年]?(\d{1,2})[-/.月]?(\d{1,2})');
BEGIN
    IF parts IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN make_date(parts[1]::int, parts[2]::int, parts[3]::int);
EXCEPTION WHEN others THEN
    RETURN NULL;
END;
$$;

-- A person's name as the pipeline normalises it (crosscheck.normalise.normalise_name): NFKC,
-- no whitespace, every dot variant between parts as U+00B7.
CREATE OR REPLACE FUNCTION mart.norm_name(value text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT nullif(regexp_replace(regexp_replace(normalize(coalesce(value, ''), NFKC), '\s+', '', 'g'),
                                 '[.\u00b7\u2022\u30fb\u2219\u2027\u22c5\u2e31\u0387\uff0e\uff65]+', '·', 'g'), '')
$$;

-- ID01/ID02 suggest the likely owner of an unusable ID by name in the residents register.
CREATE INDEX ON core.residents (as_of, name);

-- The departments a finding involves, de-duplicated, in one fixed order: 民政,扶贫,财政,人社.
CREATE OR REPLACE FUNCTION mart.dept_list(depts text[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg(d, ',' ORDER BY array_position(ARRAY['民政', '扶贫', '财政', '人社'], d))
    FROM (SELECT DISTINCT unnest(depts) AS d) x
    WHERE d IS NOT NULL
$$;
