-- Training indicators per town, from the training register (trainings completed in Y; a row sent
-- twice with the same key counts once). No denominator; value = numerator.
--
-- 培训合格人数: persons trained and qualified this year
-- 培训补贴人次 / 培训补贴金额: trainings with a 培训补贴, and its sum (yuan)
-- 交通食宿补贴人次 / 交通食宿补贴金额: trainings with a 交通食宿补贴, and its sum (yuan)
WITH trainings AS (
    SELECT DISTINCT ON (tr.id_number, tr.trade, tr.completion_date)
           tr.id_number, pe.town, tr.qualified,
           coalesce(tr.training_subsidy, 0) AS training_subsidy,
           coalesce(tr.travel_subsidy, 0) AS travel_subsidy
    FROM night.training tr
    JOIN night.people pe USING (id_number)
    CROSS JOIN night.params pr
    WHERE date_trunc('year', tr.completion_date) = pr.year_start
    ORDER BY tr.id_number, tr.trade, tr.completion_date, tr.row_number
)
SELECT '培训合格人数' AS indicator, t.town,
       count(DISTINCT x.id_number) FILTER (WHERE x.qualified) AS numerator, NULL::numeric AS denominator
FROM night.towns t LEFT JOIN trainings x USING (town) GROUP BY t.town
UNION ALL
SELECT '培训补贴人次', t.town, count(x.town) FILTER (WHERE x.training_subsidy > 0), NULL
FROM night.towns t LEFT JOIN trainings x USING (town) GROUP BY t.town
UNION ALL
SELECT '培训补贴金额', t.town, coalesce(sum(x.training_subsidy), 0), NULL
FROM night.towns t LEFT JOIN trainings x USING (town) GROUP BY t.town
UNION ALL
SELECT '交通食宿补贴人次', t.town, count(x.town) FILTER (WHERE x.travel_subsidy > 0), NULL
FROM night.towns t LEFT JOIN trainings x USING (town) GROUP BY t.town
UNION ALL
SELECT '交通食宿补贴金额', t.town, coalesce(sum(x.travel_subsidy), 0), NULL
FROM night.towns t LEFT JOIN trainings x USING (town) GROUP BY t.town
