-- ---
-- SS08:
--   severity: critical
--   group: pension
--   title: 重复领取
--   explanation: 同一人同一月份养老金发放两次及以上（重复领取），请追回多发金额。
-- ---
-- SS08  重复领取: two or more pension payments for the same person and month; amount = the
--       surplus — critical
-- One finding per person and month (period 'YYYY-MM'); payments are counted by 流水号 (a row
-- sent twice is one payment). Surplus = total paid for the month minus the largest payment.
WITH months AS (
    SELECT id_number, month FROM night.pension_paid
    GROUP BY id_number, month
    HAVING count(*) >= 2
),
twice AS (
    SELECT pp.id_number, pp.month, count(*) AS payments, sum(pp.amount) AS total, max(pp.amount) AS largest,
           string_agg(pp.serial_no, '、' ORDER BY pp.serial_no) AS serials
    FROM night.pension_paid pp
    JOIN months m USING (id_number, month)
    GROUP BY pp.id_number, pp.month
)
SELECT 'SS08' AS rule_code,
       t.id_number AS subject_key,
       to_char(t.month, 'YYYY-MM') AS period,
       t.id_number,
       pe.name,
       pe.town,
       pe.village,
       '人社' AS departments,
       to_char(t.month, 'YYYY-MM') || '养老金发放' || t.payments || '笔（流水号' || t.serials || '）共'
           || to_char(t.total, 'FM999999999990.00') || '元，多发'
           || to_char(t.total - t.largest, 'FM999999999990.00') || '元' AS detail,
       t.total - t.largest AS amount
FROM twice t
LEFT JOIN night.people pe USING (id_number)
