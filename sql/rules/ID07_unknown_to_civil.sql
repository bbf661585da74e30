-- ---
-- ID07:
--   severity: low
--   group: identity
--   title: 民政人口信息中无此人
--   explanation: 其他部门有此人记录，但民政人口信息中没有，请核实户籍。
-- ---
-- ID07  person in another department's extract but not in the residents register (unknown to
--       civil affairs) — low
-- "Another department": poverty, finance, hrss. Nothing is reported while the residents register
-- has no rows tonight (never received): that is a freshness problem, not 100,000 findings.
WITH outsiders AS (
    SELECT p.id_number FROM night.people p
    WHERE NOT p.in_residents AND EXISTS (SELECT 1 FROM night.residents)
),
seen AS (
    SELECT o.id_number, 2 AS o, '扶贫' AS dept, '建档立卡贫困人口' AS title FROM outsiders o
    WHERE EXISTS (SELECT 1 FROM night.registry x WHERE x.id_number = o.id_number)
    UNION ALL
    SELECT o.id_number, 3, '财政', '惠民惠农补贴发放明细' FROM outsiders o
    WHERE EXISTS (SELECT 1 FROM night.payments x WHERE x.id_number = o.id_number)
    UNION ALL
    SELECT o.id_number, 4, '人社', '城乡居民养老保险参保信息' FROM outsiders o
    WHERE EXISTS (SELECT 1 FROM night.enrollment x WHERE x.id_number = o.id_number)
    UNION ALL
    SELECT o.id_number, 4, '人社', '养老保险待遇发放明细' FROM outsiders o
    WHERE EXISTS (SELECT 1 FROM night.pension_payments x WHERE x.id_number = o.id_number)
    UNION ALL
    SELECT o.id_number, 4, '人社', '就业登记' FROM outsiders o
    WHERE EXISTS (SELECT 1 FROM night.jobs x WHERE x.id_number = o.id_number)
    UNION ALL
    SELECT o.id_number, 4, '人社', '职业技能培训' FROM outsiders o
    WHERE EXISTS (SELECT 1 FROM night.training x WHERE x.id_number = o.id_number)
)
SELECT 'ID07' AS rule_code,
       s.id_number AS subject_key,
       '' AS period,
       s.id_number,
       p.name,
       p.town,
       p.village,
       night.dept_list('民政'::text || array_agg(s.dept)) AS departments,
       '在' || string_agg(s.dept || '“' || s.title || '”', '、' ORDER BY s.o, s.title)
           || '中有记录，但不在民政人口基础信息中' AS detail,
       NULL::numeric AS amount
FROM seen s
JOIN night.people p USING (id_number)
GROUP BY s.id_number, p.name, p.town, p.village
