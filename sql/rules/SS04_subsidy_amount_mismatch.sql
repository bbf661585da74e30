-- ---
-- SS04:
--   severity: medium
--   group: pension
--   title: 代缴金额不一致
--   explanation: 人社登记的本年代缴金额与财政代缴发放合计不一致。
-- ---
-- SS04  代缴金额不一致: HR's 本年代缴金额 differs from the sum of finance's 代缴 payments for the
--       person this year — medium
-- (persons with an enrollment row; amount = the difference, absolute)
SELECT 'SS04' AS rule_code,
       e.id_number AS subject_key,
       '' AS period,
       e.id_number,
       pe.name,
       pe.town,
       pe.village,
       night.dept_list(ARRAY['财政', '人社']) AS departments,
       '人社本年代缴金额' || to_char(e.subsidy_amount_year, 'FM999999999990.00') || '元，财政' || pr.year
           || '年代缴' || coalesce(sp.payments, 0) || '笔共' || to_char(coalesce(sp.amount, 0), 'FM999999999990.00')
           || '元，相差' || to_char(abs(e.subsidy_amount_year - coalesce(sp.amount, 0)), 'FM999999999990.00')
           || '元' AS detail,
       abs(e.subsidy_amount_year - coalesce(sp.amount, 0)) AS amount
FROM night.enrol e
JOIN night.people pe USING (id_number)
CROSS JOIN night.params pr
LEFT JOIN night.subsidy_paid sp USING (id_number)
WHERE e.subsidy_amount_year <> coalesce(sp.amount, 0)
