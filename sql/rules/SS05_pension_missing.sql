-- ---
-- SS05:
--   severity: high
--   group: pension
--   title: 应发未发
--   explanation: 贫困人口年满60周岁、已参保，但未正常领取养老金（应发未发）。
-- ---
-- SS05  应发未发: poor person, alive, aged ≥60, enrolled, 待遇状态 not 正常领取 or no pension
--       payment in the last full month — high
WITH last_month AS (
    SELECT pp.id_number
    FROM night.pension_paid pp CROSS JOIN night.params pr
    WHERE pp.month = pr.last_full_month
    GROUP BY pp.id_number
)
SELECT 'SS05' AS rule_code,
       p.id_number AS subject_key,
       '' AS period,
       p.id_number,
       pe.name,
       pe.town,
       pe.village,
       night.dept_list(ARRAY['扶贫', '人社']) AS departments,
       '建档立卡贫困人口，' || to_char(pe.birth_date, 'YYYY-MM-DD') || '出生，已满' || pr.pension_min_age
           || '周岁并已参保，' || concat_ws('，',
               CASE WHEN NOT e.drawing THEN '待遇状态为“' || e.benefit_status || '”' END,
               CASE WHEN lm.id_number IS NULL
                    THEN to_char(pr.last_full_month, 'YYYY-MM') || '无养老金发放记录' END) AS detail,
       NULL::numeric AS amount
FROM night.poor p
JOIN night.people pe USING (id_number)
JOIN night.enrol e USING (id_number)
CROSS JOIN night.params pr
LEFT JOIN last_month lm USING (id_number)
WHERE pe.alive
  AND pe.age >= pr.pension_min_age
  AND e.enrolled
  AND (NOT e.drawing OR lm.id_number IS NULL)
