-- ---
-- SS02:
--   severity: high
--   group: pension
--   title: 应代未代
--   explanation: 代缴对象已参保，但本年未代缴保费（应代未代）。
-- ---
-- SS02  应代未代: 代缴-eligible this year, enrolled, aged 16-59, 本年代缴金额 is 0 and no finance
--       payment of 城乡居民养老保险代缴 this year — high
-- (aged 16-59: enrol_min_age <= age < pension_min_age; "this year" = 所属期间 in Y)
SELECT 'SS02' AS rule_code,
       s.id_number AS subject_key,
       '' AS period,
       s.id_number,
       pe.name,
       pe.town,
       pe.village,
       night.dept_list(ARRAY[CASE WHEN s.reasons ~ '低保|特困|残疾' THEN '民政' END,
                            CASE WHEN s.reasons ~ '建档立卡' THEN '扶贫' END, '财政', '人社']) AS departments,
       '属于代缴范围（' || s.reasons || '），已参保（' || e.enrol_status || '），本年代缴金额为0，财政无'
           || pr.year || '年城乡居民养老保险代缴记录' AS detail,
       NULL::numeric AS amount
FROM night.subsidy_eligible s
JOIN night.enrol e USING (id_number)
JOIN night.people pe USING (id_number)
CROSS JOIN night.params pr
WHERE e.enrolled
  AND pe.age >= pr.enrol_min_age AND pe.age < pr.pension_min_age
  AND e.subsidy_amount_year = 0
  AND NOT EXISTS (SELECT 1 FROM night.subsidy_paid sp WHERE sp.id_number = s.id_number)
