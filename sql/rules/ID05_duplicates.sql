-- ---
-- ID05:
--   severity: medium
--   group: identity
--   title: 重复记录或多个贫困户
--   explanation: 同一人重复登记，或同时属于多个贫困户，请核实后保留一条。
-- ---
-- ID05  one person in more than one poverty household, or the same key twice in one registry
--       snapshot (residents, registry, enrollment) — medium
-- One finding per person; the detail says where the person is duplicated.
WITH dup AS (
    SELECT id_number, 2 AS o, '扶贫' AS dept,
           '同时属于' || count(DISTINCT household_no) || '个贫困户（户编号'
           || string_agg(DISTINCT household_no, '、') || '）' AS what
    FROM night.registry
    GROUP BY id_number HAVING count(DISTINCT household_no) > 1
    UNION ALL
    SELECT id_number, 1, '民政', '人口基础信息中出现' || count(*) || '次'
    FROM night.residents GROUP BY id_number HAVING count(*) > 1
    UNION ALL
    SELECT id_number, 2, '扶贫', '建档立卡贫困人口中出现' || count(*) || '次'
    FROM night.registry GROUP BY id_number HAVING count(*) > 1
    UNION ALL
    SELECT id_number, 4, '人社', '城乡居民养老保险参保信息中出现' || count(*) || '次'
    FROM night.enrollment GROUP BY id_number HAVING count(*) > 1
)
SELECT 'ID05' AS rule_code,
       d.id_number AS subject_key,
       '' AS period,
       d.id_number,
       p.name,
       p.town,
       p.village,
       night.dept_list(array_agg(d.dept)) AS departments,
       string_agg(d.what, '；' ORDER BY d.o, d.what) AS detail,
       NULL::numeric AS amount
FROM dup d JOIN night.people p USING (id_number)
WHERE d.id_number IS NOT NULL
GROUP BY d.id_number, p.name, p.town, p.village
