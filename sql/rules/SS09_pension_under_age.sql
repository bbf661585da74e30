-- ---
-- SS09:
--   severity: high
--   group: pension
--   title: 未到龄领取
--   explanation: 未满60周岁即领取养老金（未到龄领取）。
-- ---
-- SS09  未到龄领取: 待遇状态 正常领取 or a pension payment while aged <60 — high
-- (age in whole years at D from the ID; amount = pension paid in the extract, if any)
WITH paid AS (
    SELECT pp.id_number, count(*) AS payments, sum(pp.amount) AS amount
    FROM night.pension_paid pp
    JOIN night.people pe USING (id_number)
    CROSS JOIN night.params pr
    WHERE pe.age < pr.pension_min_age
    GROUP BY pp.id_number
)
SELECT 'SS09' AS rule_code,
       pe.id_number AS subject_key,
       '' AS period,
       pe.id_number,
       pe.name,
       pe.town,
       pe.village,
       '人社' AS departments,
       to_char(pe.birth_date, 'YYYY-MM-DD') || '出生，未满' || pr.pension_min_age || '周岁，但'
           || concat_ws('，',
               CASE WHEN e.drawing THEN '待遇状态为“正常领取”' END,
               CASE WHEN pd.id_number IS NOT NULL
                    THEN '已发放养老金' || pd.payments || '笔共' || to_char(pd.amount, 'FM999999999990.00') || '元'
               END) AS detail,
       pd.amount
FROM night.people pe
CROSS JOIN night.params pr
LEFT JOIN night.enrol e USING (id_number)
LEFT JOIN paid pd USING (id_number)
WHERE pe.age < pr.pension_min_age
  AND (coalesce(e.drawing, false) OR pd.id_number IS NOT NULL)
