-- Indicators 参保率, 代缴率, 待遇应享尽享率 per town (the residents' town of each person).
-- Returns indicator, town, numerator, denominator; the district row is the sum over towns and
-- value = numerator / denominator (4 decimals; NULL when the denominator is 0).
--
-- 参保率: poor persons alive, aged ≥16, not students, enrolled ÷ such poor persons
-- 代缴率: 代缴-eligible persons aged 16-59 enrolled with 代缴 this year ÷ 代缴-eligible persons
--         aged 16-59 enrolled  (代缴 this year: 本年代缴金额 > 0 or a finance 代缴 payment in Y)
-- 待遇应享尽享率: poor persons alive aged ≥60 drawing a pension ÷ poor persons alive aged ≥60
--         (drawing: enrolled, 待遇状态 正常领取 and paid for the last full month — the
--          complement of SS05 plus those not enrolled at all)
WITH insured AS (
    SELECT pe.town, coalesce(e.enrolled, false) AS ok
    FROM night.poor p
    JOIN night.people pe USING (id_number)
    CROSS JOIN night.params pr
    LEFT JOIN night.enrol e USING (id_number)
    WHERE pe.alive AND pe.age >= pr.enrol_min_age AND NOT p.is_student
),
subsidised AS (
    SELECT pe.town, (e.subsidy_amount_year > 0 OR sp.id_number IS NOT NULL) AS ok
    FROM night.subsidy_eligible s
    JOIN night.enrol e USING (id_number)
    JOIN night.people pe USING (id_number)
    CROSS JOIN night.params pr
    LEFT JOIN night.subsidy_paid sp USING (id_number)
    WHERE e.enrolled AND pe.age >= pr.enrol_min_age AND pe.age < pr.pension_min_age
),
paid_last_month AS (
    SELECT DISTINCT pp.id_number
    FROM night.pension_paid pp JOIN night.params pr ON pp.month = pr.last_full_month
),
drawing AS (
    SELECT pe.town, coalesce(e.enrolled AND e.drawing, false) AND pl.id_number IS NOT NULL AS ok
    FROM night.poor p
    JOIN night.people pe USING (id_number)
    CROSS JOIN night.params pr
    LEFT JOIN night.enrol e USING (id_number)
    LEFT JOIN paid_last_month pl USING (id_number)
    WHERE pe.alive AND pe.age >= pr.pension_min_age
)
SELECT '参保率' AS indicator, t.town, count(i.town) FILTER (WHERE i.ok) AS numerator, count(i.town) AS denominator
FROM night.towns t LEFT JOIN insured i USING (town) GROUP BY t.town
UNION ALL
SELECT '代缴率', t.town, count(s.town) FILTER (WHERE s.ok), count(s.town)
FROM night.towns t LEFT JOIN subsidised s USING (town) GROUP BY t.town
UNION ALL
SELECT '待遇应享尽享率', t.town, count(d.town) FILTER (WHERE d.ok), count(d.town)
FROM night.towns t LEFT JOIN drawing d USING (town) GROUP BY t.town
