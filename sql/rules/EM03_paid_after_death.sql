-- ---
-- EM03:
--   severity: critical
--   group: employment
--   title: 死亡后仍发放补贴
--   explanation: 人员死亡后仍有财政补贴发放，请追回。
-- ---
-- EM03  any finance payment dated after the person's death (subsidies, 低保金, ...); amount = the
--       sum — critical
-- ("dated" = 发放日期 later than 死亡日期.) One finding per person; the detail lists the items.
WITH after AS (
    SELECT p.id_number, p.item, count(*) AS payments, sum(p.amount) AS amount,
           min(p.paid_date) AS first_paid, max(p.paid_date) AS last_paid
    FROM night.paid p
    JOIN night.people pe USING (id_number)
    WHERE pe.death_date IS NOT NULL AND p.paid_date > pe.death_date
    GROUP BY p.id_number, p.item
)
SELECT 'EM03' AS rule_code,
       a.id_number AS subject_key,
       '' AS period,
       a.id_number,
       pe.name,
       pe.town,
       pe.village,
       night.dept_list(ARRAY['民政', '财政']) AS departments,
       to_char(pe.death_date, 'YYYY-MM-DD') || '死亡，之后财政仍发放：'
           || string_agg(a.item || a.payments || '笔' || to_char(a.amount, 'FM999999999990.00') || '元（'
                         || to_char(a.first_paid, 'YYYY-MM-DD')
                         || CASE WHEN a.last_paid > a.first_paid THEN '至' || to_char(a.last_paid, 'YYYY-MM-DD') ELSE '' END
                         || '）', '；' ORDER BY a.item) AS detail,
       sum(a.amount) AS amount
FROM after a
JOIN night.people pe USING (id_number)
GROUP BY a.id_number, pe.name, pe.town, pe.village, pe.death_date
