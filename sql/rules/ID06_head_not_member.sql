-- ---
-- ID06:
--   severity: medium
--   group: identity
--   title: 户主不是本户成员
--   explanation: 贫困户户主不是本户成员，请核实户主信息。
-- ---
-- ID06  a poverty household whose 户主身份证号 is not a member of that household — medium
-- One finding per household and head ID (subject '<户编号>:<户主身份证号>'); id_number is the
-- head's ID as the registry gives it.
WITH households AS (
    SELECT household_no, head_id_number,
           min(town) AS town, min(village) AS village,
           string_agg(DISTINCT name, '、') AS members
    FROM night.registry
    WHERE head_id_number IS NOT NULL
    GROUP BY household_no, head_id_number
)
SELECT 'ID06' AS rule_code,
       h.household_no || ':' || h.head_id_number AS subject_key,
       '' AS period,
       h.head_id_number AS id_number,
       p.name,
       h.town,
       h.village,
       '扶贫' AS departments,
       '贫困户' || h.household_no || '的户主身份证号' || h.head_id_number || '不是该户成员（该户成员：'
           || coalesce(h.members, '') || '）' AS detail,
       NULL::numeric AS amount
FROM households h
LEFT JOIN night.people p ON p.id_number = h.head_id_number
WHERE NOT EXISTS (
    SELECT 1 FROM night.registry m
    WHERE m.household_no = h.household_no AND m.id_number = h.head_id_number
)
