-- ---
-- EM04:
--   severity: medium
--   group: employment
--   title: 培训重复补贴
--   explanation: 同一人同一培训工种重复享受培训补贴。
-- ---
-- EM04  the same training (person, 培训工种) subsidised twice — medium
-- (a training row is subsidised when 培训补贴 or 交通食宿补贴 is above 0; a row sent twice with the
--  same key is one training.) One finding per person; amount = the subsidies beyond the first.
WITH trainings AS (
    SELECT DISTINCT ON (id_number, trade, completion_date)
           id_number, trade, completion_date,
           coalesce(training_subsidy, 0) + coalesce(travel_subsidy, 0) AS subsidy
    FROM night.training
    WHERE id_number IS NOT NULL
    ORDER BY id_number, trade, completion_date, row_number
),
twice AS (
    SELECT id_number, trade, count(*) AS times, sum(subsidy) AS total, sum(subsidy) - max(subsidy) AS surplus,
           string_agg(to_char(completion_date, 'YYYY-MM-DD'), '、' ORDER BY completion_date) AS dates
    FROM trainings
    WHERE subsidy > 0
    GROUP BY id_number, trade
    HAVING count(*) >= 2
)
SELECT 'EM04' AS rule_code,
       t.id_number AS subject_key,
       '' AS period,
       t.id_number,
       pe.name,
       pe.town,
       pe.village,
       '人社' AS departments,
       string_agg(t.trade || '培训补贴' || t.times || '次（结业' || t.dates || '）共'
                  || to_char(t.total, 'FM999999999990.00') || '元', '；' ORDER BY t.trade) AS detail,
       sum(t.surplus) AS amount
FROM twice t
LEFT JOIN night.people pe USING (id_number)
GROUP BY t.id_number, pe.name, pe.town, pe.village
