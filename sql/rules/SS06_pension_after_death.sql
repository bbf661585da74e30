-- ---
-- SS06:
--   severity: critical
--   group: pension
--   title: 死亡冒领
--   explanation: 人员死亡后仍发放养老金（死亡冒领），请追回多发金额。
-- ---
-- SS06  死亡冒领: pension paid for a month after the month of death; the finding carries the
--       months and the amount overpaid — critical
-- One finding per person and month paid after the death month (period 'YYYY-MM'); amount = what
-- was paid for that month. Death on 31 Oct: October's pension is due, November's is not.
SELECT 'SS06' AS rule_code,
       pp.id_number AS subject_key,
       to_char(pp.month, 'YYYY-MM') AS period,
       pp.id_number,
       pe.name,
       pe.town,
       pe.village,
       night.dept_list(ARRAY['民政', '人社']) AS departments,
       to_char(pe.death_date, 'YYYY-MM-DD') || '死亡，仍发放' || to_char(pp.month, 'YYYY-MM') || '养老金'
           || count(*) || '笔共' || to_char(sum(pp.amount), 'FM999999999990.00') || '元' AS detail,
       sum(pp.amount) AS amount
FROM night.pension_paid pp
JOIN night.people pe USING (id_number)
WHERE pe.death_date IS NOT NULL
  AND pp.month > date_trunc('month', pe.death_date)
GROUP BY pp.id_number, pp.month, pe.name, pe.town, pe.village, pe.death_date
