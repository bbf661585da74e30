-- ---
-- SS01:
--   severity: high
--   group: pension
--   title: 应参未参
--   explanation: 贫困人口年满16周岁、非在校生、健在，但未参加城乡居民养老保险（应参未参）。
-- ---
-- SS01  应参未参: poor person, alive, aged ≥16, not a student, not enrolled (no enrollment row,
--       or 参保状态 终止参保) — high
SELECT 'SS01' AS rule_code,
       p.id_number AS subject_key,
       '' AS period,
       p.id_number,
       pe.name,
       pe.town,
       pe.village,
       night.dept_list(ARRAY['扶贫', '人社']) AS departments,
       '建档立卡贫困人口（' || p.poverty_status || '），' || to_char(pe.birth_date, 'YYYY-MM-DD') || '出生，非在校生，'
           || CASE WHEN e.id_number IS NULL THEN '无城乡居民养老保险参保记录'
                   ELSE '参保状态为“' || e.enrol_status || '”' END AS detail,
       NULL::numeric AS amount
FROM night.poor p
JOIN night.people pe USING (id_number)
CROSS JOIN night.params pr
LEFT JOIN night.enrol e USING (id_number)
WHERE pe.alive
  AND pe.age >= pr.enrol_min_age
  AND NOT p.is_student
  AND NOT coalesce(e.enrolled, false)
