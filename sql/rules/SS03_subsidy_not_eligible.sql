-- ---
-- SS03:
--   severity: medium
--   group: pension
--   title: 不在代缴范围
--   explanation: 不属于代缴对象却有代缴记录（不在代缴范围）。
-- ---
-- SS03  不在代缴范围: 代缴 recorded (代缴类别 not 无, or a finance 代缴 payment) for a person who is
--       not 代缴-eligible — medium
-- (finance 代缴 payment = 城乡居民养老保险代缴 with 所属期间 in Y; amount = what finance paid this
--  year, else HR's 本年代缴金额)
WITH recorded AS (
    SELECT id_number FROM night.enrol WHERE subsidy_category IS NOT NULL
    UNION
    SELECT id_number FROM night.subsidy_paid
)
SELECT 'SS03' AS rule_code,
       r.id_number AS subject_key,
       '' AS period,
       r.id_number,
       pe.name,
       pe.town,
       pe.village,
       night.dept_list(ARRAY[CASE WHEN e.subsidy_category IS NOT NULL THEN '人社' END,
                            CASE WHEN sp.id_number IS NOT NULL THEN '财政' END]) AS departments,
       '不属于代缴范围，但' || concat_ws('，',
           CASE WHEN e.subsidy_category IS NOT NULL THEN '人社代缴类别为“' || e.subsidy_category || '”' END,
           CASE WHEN e.subsidy_amount_year > 0
                THEN '本年代缴金额' || to_char(e.subsidy_amount_year, 'FM999999999990.00') || '元' END,
           CASE WHEN sp.id_number IS NOT NULL
                THEN '财政' || pr.year || '年代缴' || sp.payments || '笔共'
                     || to_char(sp.amount, 'FM999999999990.00') || '元' END) AS detail,
       nullif(coalesce(sp.amount, e.subsidy_amount_year, 0), 0) AS amount
FROM recorded r
JOIN night.people pe USING (id_number)
CROSS JOIN night.params pr
LEFT JOIN night.enrol e USING (id_number)
LEFT JOIN night.subsidy_paid sp USING (id_number)
WHERE NOT EXISTS (SELECT 1 FROM night.subsidy_eligible s WHERE s.id_number = r.id_number)
