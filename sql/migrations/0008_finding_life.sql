-- Findings' life as rules.md words it ("Findings and their life"):
-- 1. A 不属实 verdict holds while the finding's detail and amount are unchanged: data_hash is now
--    md5(detail|amount) (crosscheck.compare.DATA_HASH). Verdicts given on a finding's current data get
--    the new hash of that data; verdicts given on older data cannot be recomputed and keep a hash that
--    no longer matches (the finding counts as changed, as before).
-- 2. ID01/ID02 findings are identified by (rule, ID as written), no longer by extract: the subject
--    '<extract>:<raw id>' becomes '<raw id>'. Where one raw ID had findings in several extracts, the
--    oldest keeps its history under the new subject; the others keep theirs and resolve.

UPDATE mart.feedback f
SET data_hash = md5(concat_ws('|', m.detail, m.amount::text))
FROM mart.findings m
WHERE m.finding_id = f.finding_id AND f.data_hash = m.data_hash;

UPDATE mart.findings SET data_hash = md5(concat_ws('|', detail, amount::text));

UPDATE mart.findings m
SET subject_key = r.raw_id
FROM (
    SELECT finding_id, substr(subject_key, strpos(subject_key, ':') + 1) AS raw_id,
           row_number() OVER (PARTITION BY rule_code, substr(subject_key, strpos(subject_key, ':') + 1), period
                              ORDER BY finding_id) AS n
    FROM mart.findings
    WHERE rule_code IN ('ID01', 'ID02') AND strpos(subject_key, ':') > 0
) r
WHERE m.finding_id = r.finding_id AND r.n = 1
  AND NOT EXISTS (SELECT 1 FROM mart.findings x
                  WHERE x.rule_code = m.rule_code AND x.subject_key = r.raw_id AND x.period = m.period);
