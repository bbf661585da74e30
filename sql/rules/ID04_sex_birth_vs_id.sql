-- ---
-- ID04:
--   severity: medium
--   group: identity
--   title: 性别或出生日期与身份证号不符
--   explanation: 性别或出生日期与身份证号不一致，请核实并更正登记信息。
-- ---
-- ID04  sex or birth date column disagrees with the ID number — medium
-- "sex or birth date column disagrees with the ID number"
-- Checked in the residents register (性别, 出生日期) and the poverty registry (性别). The ID's
-- 17th digit is odd for men; digits 7-14 are the birth date. One finding per person.
WITH wrong AS (
    SELECT r.id_number, 1 AS o, '民政' AS dept,
           concat_ws('；',
               CASE WHEN r.sex <> p.id_sex THEN '户籍性别为“' || r.sex || '”，身份证号为' || p.id_sex END,
               CASE WHEN r.birth_date <> p.birth_date
                    THEN '户籍出生日期为' || to_char(r.birth_date, 'YYYY-MM-DD') || '，身份证号为'
                         || to_char(p.birth_date, 'YYYY-MM-DD') END) AS what
    FROM night.residents r JOIN night.people p USING (id_number)
    WHERE r.sex <> p.id_sex OR r.birth_date <> p.birth_date
    UNION
    SELECT r.id_number, 2, '扶贫', '建档立卡性别为“' || r.sex || '”，身份证号为' || p.id_sex
    FROM night.registry r JOIN night.people p USING (id_number)
    WHERE r.sex <> p.id_sex
)
SELECT 'ID04' AS rule_code,
       w.id_number AS subject_key,
       '' AS period,
       w.id_number,
       p.name,
       p.town,
       p.village,
       night.dept_list(array_agg(w.dept)) AS departments,
       string_agg(w.what, '；' ORDER BY w.o, w.what) AS detail,
       NULL::numeric AS amount
FROM wrong w JOIN night.people p USING (id_number)
GROUP BY w.id_number, p.name, p.town, p.village
