-- ---
-- EM05:
--   severity: high
--   group: employment
--   title: 无救助记录发放低保金/特困供养金
--   explanation: 发放低保金/特困供养金的月份没有对应的救助记录。
-- ---
-- EM05  finance 低保金 (特困供养金) paid for a month that no 城乡低保 (特困供养) case of the person
--       covers — high
-- (a case covers the months between its start and end months inclusive; no end = open.)
-- One finding per person and month (period 'YYYY-MM').
SELECT 'EM05' AS rule_code,
       p.id_number AS subject_key,
       to_char(p.period, 'YYYY-MM') AS period,
       p.id_number,
       pe.name,
       pe.town,
       pe.village,
       night.dept_list(ARRAY['民政', '财政']) AS departments,
       '财政发放' || to_char(p.period, 'YYYY-MM') || string_agg(DISTINCT p.item, '、') || count(*) || '笔共'
           || to_char(sum(p.amount), 'FM999999999990.00') || '元，但该月无对应的'
           || string_agg(DISTINCT CASE p.item WHEN '低保金' THEN '城乡低保' ELSE '特困供养' END, '、')
           || '救助记录' AS detail,
       sum(p.amount) AS amount
FROM night.paid p
LEFT JOIN night.people pe USING (id_number)
WHERE p.item IN ('低保金', '特困供养金')
  AND NOT EXISTS (
      SELECT 1 FROM night.coverage c
      WHERE c.id_number = p.id_number
        AND c.kind = CASE p.item WHEN '低保金' THEN '城乡低保' ELSE '特困供养' END
        AND c.from_month <= p.period AND (c.to_month IS NULL OR c.to_month >= p.period))
GROUP BY p.id_number, p.period, pe.name, pe.town, pe.village
