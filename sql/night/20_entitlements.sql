-- Night set-up: poor persons, enrolment, 代缴 eligibility and 代缴 payments, one row per person.

-- Poor person: in the poverty registry snapshot, whatever 脱贫状态.
-- active_in_year: 未脱贫 at any time in Y (脱贫状态 未脱贫, or 脱贫年度 = Y).
CREATE TABLE night.poor AS
SELECT r.id_number,
       bool_or(r.poverty_status = '未脱贫' OR r.exit_year = pr.year) AS active_in_year,
       bool_or(coalesce(r.is_student, false)) AS is_student,
       string_agg(DISTINCT r.poverty_status, '、') AS poverty_status
FROM night.registry r CROSS JOIN night.params pr
WHERE r.id_number IS NOT NULL
GROUP BY r.id_number;
ALTER TABLE night.poor ADD PRIMARY KEY (id_number);

-- Enrolment (城乡居民养老保险), one row per person with any enrollment row.
-- enrolled: a row whose 参保状态 is not 终止参保 (暂停缴费 counts as enrolled).
CREATE TABLE night.enrol AS
SELECT e.id_number,
       bool_or(e.enrol_status <> '终止参保') AS enrolled,
       bool_or(e.enrol_status = '正常参保') AS normal_enrolled,
       bool_or(e.benefit_status = '正常领取') AS drawing,
       string_agg(DISTINCT e.enrol_status, '、') AS enrol_status,
       string_agg(DISTINCT e.benefit_status, '、') AS benefit_status,
       string_agg(DISTINCT e.subsidy_category, '、') FILTER (WHERE e.subsidy_category <> '无') AS subsidy_category,
       max(coalesce(e.subsidy_amount_year, 0)) AS subsidy_amount_year
FROM night.enrollment e
WHERE e.id_number IS NOT NULL
GROUP BY e.id_number;
ALTER TABLE night.enrol ADD PRIMARY KEY (id_number);

-- 代缴-eligible in Y, with the reasons. The categories are configuration (night.params flags).
CREATE TABLE night.subsidy_eligible AS
WITH reasons AS (
    SELECT p.id_number, 1 AS o, '建档立卡未脱贫' AS reason
    FROM night.poor p CROSS JOIN night.params pr
    WHERE pr.poverty_active AND p.active_in_year
    UNION ALL
    SELECT a.id_number, CASE a.category WHEN '城乡低保' THEN 2 ELSE 3 END,
           CASE a.category WHEN '城乡低保' THEN '低保' ELSE '特困' END
    FROM night.assistance a CROSS JOIN night.params pr
    WHERE ((a.category = '城乡低保' AND pr.dibao) OR (a.category = '特困供养' AND pr.tekun))
      AND date_trunc('month', a.start_date) <= pr.year_end
      AND (a.end_date IS NULL OR date_trunc('month', a.end_date) >= pr.year_start)
    UNION ALL
    SELECT a.id_number, 4, '重度残疾'
    FROM night.assistance a CROSS JOIN night.params pr
    WHERE pr.severe_disability AND a.disability_grade IN ('一级', '二级')
)
SELECT id_number, string_agg(reason, '、' ORDER BY o) AS reasons
FROM (SELECT DISTINCT id_number, o, reason FROM reasons WHERE id_number IS NOT NULL) r
GROUP BY id_number;
ALTER TABLE night.subsidy_eligible ADD PRIMARY KEY (id_number);
