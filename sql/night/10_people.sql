-- Night set-up: every person (normalised ID number) seen in any extract tonight, with what the
-- rules need about them. Birth date, sex and age come from the ID number (age in whole years at D).
-- Name, town and village come from the residents register first (the town of a person is the
-- residents' town), then from the other extracts.
CREATE TABLE night.people AS
WITH residents AS (
    -- the register row of each resident (a key sent twice: the first row)
    SELECT DISTINCT ON (id_number) id_number, name, town, village
    FROM night.residents
    WHERE id_number IS NOT NULL
    ORDER BY id_number, row_number
),
others AS (
    -- people the residents register does not know, from the other extracts in this order
    SELECT o.*
    FROM (
        SELECT id_number, name, town, village, 2 AS priority, row_number FROM night.registry
        UNION ALL SELECT id_number, name, town, village, 3, row_number FROM night.assistance
        UNION ALL SELECT id_number, name, town, village, 4, row_number FROM night.enrollment
        UNION ALL SELECT id_number, name, town, NULL, 5, row_number FROM night.jobs
        UNION ALL SELECT id_number, name, town, NULL, 6, row_number FROM night.payments
        UNION ALL SELECT id_number, name, NULL, NULL, 7, row_number FROM night.pension_payments
        UNION ALL SELECT id_number, name, NULL, NULL, 8, row_number FROM night.training
        UNION ALL SELECT id_number, name, NULL, NULL, 9, row_number FROM night.deaths
    ) o
    WHERE o.id_number IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM residents r WHERE r.id_number = o.id_number)
),
named AS (
    SELECT DISTINCT ON (id_number) id_number, name FROM others
    WHERE name IS NOT NULL ORDER BY id_number, priority, row_number
),
placed AS (
    SELECT DISTINCT ON (id_number) id_number, town, village FROM others
    WHERE town IS NOT NULL ORDER BY id_number, priority, row_number
),
outsiders AS (
    SELECT i.id_number, n.name, p.town, p.village
    FROM (SELECT DISTINCT id_number FROM others) i
    LEFT JOIN named n USING (id_number)
    LEFT JOIN placed p USING (id_number)
),
everyone AS (
    SELECT id_number, name, town, village, true AS in_residents FROM residents
    UNION ALL
    SELECT id_number, name, town, village, false FROM outsiders
),
died AS (
    SELECT id_number, min(death_date) AS death_date FROM night.deaths GROUP BY id_number
),
civil AS (
    SELECT id_number, bool_or(status = '死亡') AS status_dead FROM night.residents GROUP BY id_number
)
SELECT e.id_number,
       e.name,
       coalesce(e.town, '（镇街不详）') AS town,
       e.village,
       b.birth_date,
       CASE WHEN substr(e.id_number, 17, 1) IN ('1', '3', '5', '7', '9') THEN '男' ELSE '女' END AS id_sex,
       date_part('year', age(pr.as_of, b.birth_date))::int AS age,
       e.in_residents,
       d.death_date,
       coalesce(c.status_dead, false) AS status_dead,
       d.id_number IS NULL AND NOT coalesce(c.status_dead, false) AS alive
FROM everyone e
CROSS JOIN night.params pr
CROSS JOIN LATERAL (SELECT to_date(substr(e.id_number, 7, 8), 'YYYYMMDD') AS birth_date) b  -- valid: core IDs passed the check
LEFT JOIN died d USING (id_number)
LEFT JOIN civil c USING (id_number);
ALTER TABLE night.people ADD PRIMARY KEY (id_number);

-- The towns indicators are reported for: every town of a person seen tonight.
CREATE TABLE night.towns AS SELECT DISTINCT town FROM night.people;
