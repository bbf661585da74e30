-- ---
-- ID03:
--   severity: high
--   group: identity
--   title: 同一身份证号姓名不一致
--   explanation: 同一身份证号在两个部门登记的姓名不同，请核实以哪个为准。
-- ---
-- ID03  same ID, different name between two departments (after name normalisation) — high
-- "same ID, different name between two departments (after name normalisation)"
-- Names are the normalised ones (NFKC, no spaces, every dot variant as ·), so 阿依·古丽 and
-- 阿依.古丽 are the same name. One finding per person; the detail lists each department's names.
WITH all_names AS MATERIALIZED (
    -- each person's names in each extract; the extracts whose rows are not counted are reduced to one row
    -- per (person, name) by hashing first (3.6 M pension payments → 0.2 M rows), and the 1.8 M rows left
    -- are kept for the two passes below instead of reading 5.5 M twice
    SELECT id_number, 1 AS o, '民政' AS dept, name FROM night.residents
    UNION ALL SELECT id_number, 1, '民政', name FROM night.deaths GROUP BY id_number, name
    UNION ALL SELECT id_number, 1, '民政', name FROM night.assistance GROUP BY id_number, name
    UNION ALL SELECT id_number, 2, '扶贫', name FROM night.registry
    UNION ALL SELECT id_number, 3, '财政', name FROM night.payments GROUP BY id_number, name
    UNION ALL SELECT id_number, 4, '人社', name FROM night.enrollment
    UNION ALL SELECT id_number, 4, '人社', name FROM night.pension_payments GROUP BY id_number, name
    UNION ALL SELECT id_number, 4, '人社', name FROM night.jobs GROUP BY id_number, name
    UNION ALL SELECT id_number, 4, '人社', name FROM night.training GROUP BY id_number, name
),
differ AS (
    -- cheap first pass: persons with more than one name anywhere (byte order: no collation needed
    -- to tell two names apart)
    SELECT id_number FROM all_names WHERE name IS NOT NULL
    GROUP BY id_number HAVING min(name COLLATE "C") <> max(name COLLATE "C")
),
names AS (
    SELECT DISTINCT a.id_number, a.o, a.dept, a.name
    FROM all_names a JOIN differ USING (id_number)
    WHERE a.name IS NOT NULL
),
clash AS (
    SELECT DISTINCT a.id_number
    FROM names a JOIN names b ON b.id_number = a.id_number AND b.dept <> a.dept AND b.name <> a.name
),
per_dept AS (
    SELECT n.id_number, n.o, n.dept, string_agg(n.name, '/' ORDER BY n.name) AS names
    FROM names n JOIN clash USING (id_number)
    GROUP BY n.id_number, n.o, n.dept
)
SELECT 'ID03' AS rule_code,
       d.id_number AS subject_key,
       '' AS period,
       d.id_number,
       p.name,
       p.town,
       p.village,
       night.dept_list(array_agg(d.dept)) AS departments,
       '同一身份证号姓名不一致：' || string_agg(d.dept || '“' || d.names || '”', '，' ORDER BY d.o) AS detail,
       NULL::numeric AS amount
FROM per_dept d
JOIN night.people p USING (id_number)
GROUP BY d.id_number, p.name, p.town, p.village
