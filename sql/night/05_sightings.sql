-- Night set-up: every person the extracts other than the residents register give, as each extract gives
-- them, read once for night.people (the persons the register does not know) and night.identity (the
-- cross-department person view). One row per extract and distinct (person, what the extract says about
-- them): `rows` counts the extract's rows, `first_row` is the first of them. The six extracts whose rows
-- are not counted person by person (deaths, assistance, payments, pension payments, jobs, training) are
-- reduced by hashing (3.6 M pension payments → 0.2 M rows); registry and enrollment pass row by row.
-- Registry rows also give each household's head (extract NULL: a head is no row of the registry's own).
CREATE TABLE night.sightings AS
SELECT 'registry' AS extract, 2 AS priority, id_number, name, town, village, sex,
       household_no, NULL::text AS headed, 1 AS rows, row_number AS first_row
FROM night.registry WHERE id_number IS NOT NULL
UNION ALL
SELECT NULL, NULL, head_id_number, NULL, NULL, NULL, NULL, NULL, household_no, 1, row_number
FROM night.registry WHERE head_id_number IS NOT NULL
UNION ALL
SELECT 'assistance', 3, id_number, name, town, village, NULL, NULL, NULL, count(*)::int, min(row_number)
FROM night.assistance WHERE id_number IS NOT NULL GROUP BY id_number, name, town, village
UNION ALL
SELECT 'enrollment', 4, id_number, name, town, village, NULL, NULL, NULL, 1, row_number
FROM night.enrollment WHERE id_number IS NOT NULL
UNION ALL
SELECT 'jobs', 5, id_number, name, town, NULL, NULL, NULL, NULL, count(*)::int, min(row_number)
FROM night.jobs WHERE id_number IS NOT NULL GROUP BY id_number, name, town
UNION ALL
SELECT 'payments', 6, id_number, name, town, NULL, NULL, NULL, NULL, count(*)::int, min(row_number)
FROM night.payments WHERE id_number IS NOT NULL GROUP BY id_number, name, town
UNION ALL
SELECT 'pension_payments', 7, id_number, name, NULL, NULL, NULL, NULL, NULL, count(*)::int, min(row_number)
FROM night.pension_payments WHERE id_number IS NOT NULL GROUP BY id_number, name
UNION ALL
SELECT 'training', 8, id_number, name, NULL, NULL, NULL, NULL, NULL, count(*)::int, min(row_number)
FROM night.training WHERE id_number IS NOT NULL GROUP BY id_number, name
UNION ALL
SELECT 'deaths', 9, id_number, name, NULL, NULL, NULL, NULL, NULL, count(*)::int, min(row_number)
FROM night.deaths WHERE id_number IS NOT NULL GROUP BY id_number, name;
-- Read by the next two files before the night's tables are analyzed together.
ANALYZE night.sightings;
