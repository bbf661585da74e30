-- Night set-up: every person (normalised ID number) seen in any extract tonight, with what the
-- rules need about them. Birth date, sex and age come from the ID number (age in whole years at D).
-- Name, town and village come from the residents register first (the town of a person is the
-- residents' town), then from the other extracts.
CREATE TABLE night.people AS
WITH residents AS (
    -- the register row of each resident (a key sent twice: the first row), and whether any of its
    -- rows says 死亡 (the window shares the DISTINCT ON's sort; DISTINCT ON over the plain column
    -- keeps its statistics for the joins below)
    SELECT DISTINCT ON (id_number) id_number, name, town, village,
           bool_or(status = '死亡') OVER (PARTITION BY id_number) AS status_dead
    FROM night.residents
    WHERE id_number IS NOT NULL
    ORDER BY id_number, row_number
),
others AS (
    -- people the residents register does not know, from the other extracts in this order
    -- (night.sightings: their first row per distinct name and place)
    SELECT s.id_number, s.name, s.town, s.village, s.priority, s.first_row AS row_number
    FROM night.sightings s
    WHERE s.extract IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM residents r WHERE r.id_number = s.id_number)
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
    SELECT id_number, name, town, village, true AS in_residents, status_dead FROM residents
    UNION ALL
    SELECT id_number, name, town, village, false, false FROM outsiders
),
died AS (
    SELECT id_number, min(death_date) AS death_date FROM night.deaths GROUP BY id_number
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
       coalesce(e.status_dead, false) AS status_dead,
       d.id_number IS NULL AND NOT coalesce(e.status_dead, false) AS alive
FROM everyone e
CROSS JOIN night.params pr
-- valid: core IDs passed the check; 'YYYYMMDD' is ISO 8601 for date input whatever DateStyle
CROSS JOIN LATERAL (SELECT substr(e.id_number, 7, 8)::date AS birth_date) b
LEFT JOIN died d USING (id_number);
ALTER TABLE night.people ADD PRIMARY KEY (id_number);

-- The towns indicators are reported for: every town of a person seen tonight.
CREATE TABLE night.towns AS SELECT DISTINCT town FROM night.people;
