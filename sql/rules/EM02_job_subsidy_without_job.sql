-- ---
-- EM02:
--   severity: high
--   group: employment
--   title: 无岗位发放公益性岗位补贴
--   explanation: 发放公益性岗位补贴的月份没有对应的公益性岗位记录。
-- ---
-- EM02  公益性岗位补贴 paid by finance for a month that no public-welfare job of the person
--       covers — high
-- (public-welfare job: 扶贫公益性岗位 or 临时公益性岗位; covers a month between its start and end
--  months inclusive, no end = open.) One finding per person and month (period 'YYYY-MM').
SELECT 'EM02' AS rule_code,
       p.id_number AS subject_key,
       to_char(p.period, 'YYYY-MM') AS period,
       p.id_number,
       pe.name,
       pe.town,
       pe.village,
       night.dept_list(ARRAY['财政', '人社']) AS departments,
       '财政发放' || to_char(p.period, 'YYYY-MM') || '公益性岗位补贴' || count(*) || '笔共'
           || to_char(sum(p.amount), 'FM999999999990.00') || '元，但该月无公益性岗位就业记录' AS detail,
       sum(p.amount) AS amount
FROM night.paid p
LEFT JOIN night.people pe USING (id_number)
WHERE p.item = '公益性岗位补贴'
  AND NOT EXISTS (
      SELECT 1 FROM night.coverage c
      WHERE c.id_number = p.id_number AND c.kind = '公益性岗位'
        AND c.from_month <= p.period AND (c.to_month IS NULL OR c.to_month >= p.period))
GROUP BY p.id_number, p.period, pe.name, pe.town, pe.village
