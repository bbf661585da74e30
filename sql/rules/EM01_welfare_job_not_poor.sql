-- ---
-- EM01:
--   severity: medium
--   group: employment
--   title: 公益性岗位人员不符
--   explanation: 扶贫公益性岗位人员既不是贫困人口，也不是低保/特困对象。
-- ---
-- EM01  a 扶贫公益性岗位 job record for a person who is neither a poor person nor in a 低保/特困
--       case open at D — medium
-- (case open at D: 起始日期 <= D and no 终止日期 or 终止日期 >= D)
WITH jobs AS (
    SELECT id_number,
           string_agg(DISTINCT concat_ws(' ', employer, position), '、') AS where_
    FROM night.jobs
    WHERE job_type = '扶贫公益性岗位' AND id_number IS NOT NULL
    GROUP BY id_number
)
SELECT 'EM01' AS rule_code,
       j.id_number AS subject_key,
       '' AS period,
       j.id_number,
       pe.name,
       pe.town,
       pe.village,
       night.dept_list(ARRAY['民政', '扶贫', '人社']) AS departments,
       '安排在扶贫公益性岗位' || coalesce('（' || nullif(j.where_, '') || '）', '')
           || '，但不是建档立卡贫困人口，也无在保的城乡低保或特困供养救助' AS detail,
       NULL::numeric AS amount
FROM jobs j
JOIN night.people pe USING (id_number)
CROSS JOIN night.params pr
WHERE NOT EXISTS (SELECT 1 FROM night.poor p WHERE p.id_number = j.id_number)
  AND NOT EXISTS (
      SELECT 1 FROM night.assistance a
      WHERE a.id_number = j.id_number
        AND a.category IN ('城乡低保', '特困供养')
        AND a.start_date <= pr.as_of
        AND (a.end_date IS NULL OR a.end_date >= pr.as_of))
