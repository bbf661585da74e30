-- ---
-- ID01:
--   severity: high
--   group: identity
--   title: 身份证号无效
--   explanation: 身份证号无法使用（位数、字符、出生日期或校验位错误），请核实正确号码并通知报送部门更正。
-- ID02:
--   severity: high
--   group: identity
--   title: 身份证号被Excel损坏
--   explanation: 身份证号被Excel转换为数值而损坏，请报送部门将该列设为文本后重新导出。
-- ---
-- ID01  ID number unusable: wrong length, bad characters, impossible birth date, failed check
--       character (after normalisation and 15→18 upgrade) — high
-- ID02  ID number damaged by Excel (scientific notation, or trailing 000 with a failed check
--       character): cannot be repaired, re-export as text — high
-- "For ID01/ID02 the finding names the department, the file and the row, and, where a person with
--  the same name and the same birth date (or the same name in the same village) exists in the
--  residents register, suggests that person as the likely intended ID."
--
-- Source: the rows ingest quarantined with rule ID01/ID02 in the files whose snapshot is used
-- tonight. One finding per rule and ID as written (rules.md: identified by (rule, ID as written), not
-- by file or row; subject = the ID as written): the files and rows it occurs on, in every extract, are
-- listed in the detail, so a re-sent file or a moved row is the same finding.
WITH used AS (
    SELECT f.file_id, f.file_name, e.extract, e.dept_zh, e.title
    FROM night.extracts e
    JOIN ingest.files f ON f.extract = e.extract AND f.as_of = e.data_as_of AND f.status = 'loaded'
),
bad AS (
    SELECT q.rule AS rule_code, u.extract, u.dept_zh, u.title, u.file_name, q.row_number, q.column_name,
           coalesce(q.value_raw, '') AS raw_id, q.reason,
           mart.norm_name(q.row_raw ->> 'name') AS name,
           nullif(trim(q.row_raw ->> 'town'), '') AS town,
           nullif(trim(q.row_raw ->> 'village'), '') AS village,
           regexp_replace(upper(normalize(coalesce(q.value_raw, ''), NFKC)), '[^0-9X]', '', 'g') AS digits,
           q.row_raw ->> 'birth_date' AS birth_raw
    FROM ingest.quarantine q
    JOIN used u USING (file_id)
    WHERE q.rule IN ('ID01', 'ID02')
),
dated AS (
    -- the birth date inside the unusable ID when it can still be read, else the row's 出生日期
    SELECT b.*,
           coalesce(CASE length(b.digits)
                        WHEN 18 THEN mart.try_date(substr(b.digits, 7, 8))
                        WHEN 15 THEN mart.try_date('19' || substr(b.digits, 7, 6))
                    END,
                    mart.try_date(b.birth_raw)) AS birth_date
    FROM bad b
),
grouped AS (
    SELECT rule_code, extract, dept_zh, title, raw_id,
           min(name) AS name, min(town) AS town, min(village) AS village, min(birth_date) AS birth_date,
           string_agg(DISTINCT file_name, '、') AS files,
           string_agg(DISTINCT row_number::text, '、') AS rows_list,
           string_agg(DISTINCT CASE column_name WHEN 'head_id_number' THEN '户主身份证号' ELSE '身份证号' END, '、')
               AS columns_list,
           min(reason) AS reason
    FROM dated
    GROUP BY rule_code, extract, dept_zh, title, raw_id
),
by_id AS (
    SELECT rule_code, raw_id,
           min(name) AS name, min(town) AS town, min(village) AS village, min(birth_date) AS birth_date,
           string_agg(DISTINCT dept_zh, ',' ORDER BY dept_zh) AS departments,
           string_agg(dept_zh || '“' || title || '”' || files || ' 第' || rows_list || '行 ' || columns_list
                      || '“' || raw_id || '”：' || reason, '；' ORDER BY extract) AS places
    FROM grouped
    GROUP BY rule_code, raw_id
)
SELECT g.rule_code,
       g.raw_id AS subject_key,
       '' AS period,
       g.raw_id AS id_number,
       g.name,
       coalesce(g.town, s.town) AS town,
       coalesce(g.village, s.village) AS village,
       g.departments,
       g.places
           || coalesce('；疑似本人：' || s.name || ' ' || s.id_number
                       || '（' || concat_ws('', s.town, s.village) || '，' || s.why || '）', '') AS detail,
       NULL::numeric AS amount
FROM by_id g
LEFT JOIN LATERAL (
    SELECT r.id_number, r.name, r.town, r.village,
           CASE WHEN g.birth_date IS NOT NULL
                     AND g.birth_date IN (r.birth_date, mart.try_date(substr(r.id_number, 7, 8)))
                THEN '姓名和出生日期相同' ELSE '同村同名' END AS why
    FROM night.residents r
    WHERE g.name IS NOT NULL
      AND r.name = g.name
      AND ((g.birth_date IS NOT NULL AND g.birth_date IN (r.birth_date, mart.try_date(substr(r.id_number, 7, 8))))
           OR (g.village IS NOT NULL AND r.village = g.village))
    ORDER BY (g.birth_date IS NOT NULL AND g.birth_date IN (r.birth_date, mart.try_date(substr(r.id_number, 7, 8)))) DESC,
             r.id_number
    LIMIT 1
) s ON true
