-- Night set-up: the cross-department person view. One row per ID number seen tonight, as a person in
-- any extract or as a poverty household's head, with what the departments say about it: the names
-- they give (and which departments give one), the registers it is in and how often, its poverty
-- households and the households it heads, the sex and birth date the registers record.
-- The GX suite expectations/rules/identity_people.json checks household identities on it (ID03-ID07),
-- formulated independently of the rule SQL that words the findings; mart.rule_checks says whether
-- GX's count of failing persons equals the findings (crosscheck.compare.run_rule_suites).
CREATE TABLE night.identity AS
-- The residents register row by row, the other extracts as night.sightings gives them (reduced where
-- their rows are not counted: the sort by person below then has a third of the rows).
WITH seen AS (
    SELECT 'residents' AS extract, id_number, name, sex, birth_date,
           NULL::text AS household_no, NULL::text AS headed, 1 AS rows
    FROM night.residents
    UNION ALL
    SELECT extract, id_number, name, sex, NULL, household_no, headed, rows FROM night.sightings
)
SELECT s.id_number,
       array_agg(DISTINCT s.name) FILTER (WHERE s.name IS NOT NULL) AS names,
       array_agg(DISTINCT e.dept_zh) FILTER (WHERE s.name IS NOT NULL) AS name_departments,
       array_agg(DISTINCT s.extract) FILTER (WHERE s.extract IS NOT NULL) AS extracts,
       count(*) FILTER (WHERE s.extract = 'residents') AS residents_rows,
       coalesce(sum(s.rows) FILTER (WHERE s.extract = 'registry'), 0) AS registry_rows,
       coalesce(sum(s.rows) FILTER (WHERE s.extract = 'enrollment'), 0) AS enrollment_rows,
       array_agg(DISTINCT s.household_no) FILTER (WHERE s.household_no IS NOT NULL) AS households,
       array_agg(DISTINCT s.headed) FILTER (WHERE s.headed IS NOT NULL) AS headed_households,
       array_agg(DISTINCT s.sex) FILTER (WHERE s.sex IS NOT NULL) AS sexes,
       array_agg(DISTINCT s.birth_date) FILTER (WHERE s.birth_date IS NOT NULL) AS birth_dates
FROM seen s
LEFT JOIN night.extracts e USING (extract)
WHERE s.id_number IS NOT NULL
GROUP BY s.id_number;
-- Read only whole, by GX's checks (no join, no index on it): the planner needs no statistics of its
-- arrays, whose element statistics made its ANALYZE the night's dearest.
ALTER TABLE night.identity
    ALTER COLUMN names SET STATISTICS 0, ALTER COLUMN name_departments SET STATISTICS 0,
    ALTER COLUMN extracts SET STATISTICS 0, ALTER COLUMN households SET STATISTICS 0,
    ALTER COLUMN headed_households SET STATISTICS 0, ALTER COLUMN sexes SET STATISTICS 0,
    ALTER COLUMN birth_dates SET STATISTICS 0;
