-- Employment indicators per town (counts of persons; no denominator, value = numerator).
-- A job is current when it has started by D and has no end date or ends on or after D.
--
-- 贫困人员就业人数: poor persons with an open job record of any kind
-- 公益性岗位安置: poor persons in 扶贫公益性岗位 or 临时公益性岗位
-- 扶贫车间吸纳人数 / 扶贫车间吸纳贫困人数: persons / poor persons employed in 扶贫车间
WITH current_jobs AS (
    SELECT DISTINCT j.id_number, j.job_type, pe.town,
           EXISTS (SELECT 1 FROM night.poor p WHERE p.id_number = j.id_number) AS poor
    FROM night.jobs j
    JOIN night.people pe USING (id_number)
    CROSS JOIN night.params pr
    WHERE j.start_date <= pr.as_of AND (j.end_date IS NULL OR j.end_date >= pr.as_of)
)
SELECT '贫困人员就业人数' AS indicator, t.town,
       count(DISTINCT c.id_number) FILTER (WHERE c.poor) AS numerator, NULL::numeric AS denominator
FROM night.towns t LEFT JOIN current_jobs c USING (town) GROUP BY t.town
UNION ALL
SELECT '公益性岗位安置', t.town,
       count(DISTINCT c.id_number) FILTER (WHERE c.poor AND c.job_type IN ('扶贫公益性岗位', '临时公益性岗位')), NULL
FROM night.towns t LEFT JOIN current_jobs c USING (town) GROUP BY t.town
UNION ALL
SELECT '扶贫车间吸纳人数', t.town, count(DISTINCT c.id_number) FILTER (WHERE c.job_type = '扶贫车间'), NULL
FROM night.towns t LEFT JOIN current_jobs c USING (town) GROUP BY t.town
UNION ALL
SELECT '扶贫车间吸纳贫困人数', t.town,
       count(DISTINCT c.id_number) FILTER (WHERE c.job_type = '扶贫车间' AND c.poor), NULL
FROM night.towns t LEFT JOIN current_jobs c USING (town) GROUP BY t.town
