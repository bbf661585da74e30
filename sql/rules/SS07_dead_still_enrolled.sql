-- ---
-- SS07:
--   severity: medium
--   group: pension
--   title: 死亡未停保
--   explanation: 人员已死亡，但仍为正常参保或正常领取状态（死亡未停保）。
-- ---
-- SS07  死亡未停保: deceased, but 参保状态 still 正常参保 or 待遇状态 still 正常领取 — medium
-- (deceased: a death record, or 人员状态 死亡 in the residents register)
SELECT 'SS07' AS rule_code,
       pe.id_number AS subject_key,
       '' AS period,
       pe.id_number,
       pe.name,
       pe.town,
       pe.village,
       night.dept_list(ARRAY['民政', '人社']) AS departments,
       coalesce(to_char(pe.death_date, 'YYYY-MM-DD') || '死亡', '户籍人员状态为死亡') || '，但'
           || concat_ws('，',
               CASE WHEN e.normal_enrolled THEN '参保状态仍为“正常参保”' END,
               CASE WHEN e.drawing THEN '待遇状态仍为“正常领取”' END) AS detail,
       NULL::numeric AS amount
FROM night.people pe
JOIN night.enrol e USING (id_number)
WHERE NOT pe.alive
  AND (e.normal_enrolled OR e.drawing)
