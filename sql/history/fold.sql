-- Fold one snapshot (core partition {part}, dated {as_of}) into its versions table {history}; run by
-- crosscheck.history.compact in the transaction that then drops the partition.

-- The snapshot's rows: a row's identity is its content's hash and, among identical rows, its order;
-- known_pos is the place of its open version, if it has one.
CREATE TEMP TABLE fold_rows ON COMMIT DROP AS
WITH hashed AS (
    SELECT md5(ROW({cols})::text)::uuid AS row_hash, row_number AS line, {cols} FROM {part}
), keyed AS (
    SELECT h.*, row_number() OVER (PARTITION BY h.row_hash ORDER BY h.line) AS occurrence FROM hashed h
)
SELECT k.*, v.pos AS known_pos
FROM keyed k
LEFT JOIN {history} v ON v.valid_to IS NULL AND v.row_hash = k.row_hash AND v.occurrence = k.occurrence;
ANALYZE fold_rows;

-- A row already held keeps its version while it is still in the file's order (after every earlier
-- held row); new rows, and rows moved out of order, get a place between their neighbours, so that
-- the order of the places is the order of the lines.
CREATE TEMP TABLE fold_placed ON COMMIT DROP AS
WITH ordered AS (
    SELECT *, coalesce(known_pos > coalesce(max(known_pos) OVER (ORDER BY line ROWS BETWEEN UNBOUNDED PRECEDING
                                                                  AND 1 PRECEDING), known_pos - 1), false) AS kept
    FROM fold_rows
), bounded AS (
    SELECT *,
           max(CASE WHEN kept THEN known_pos END) OVER (ORDER BY line ROWS UNBOUNDED PRECEDING) AS lo,
           -- the next kept place: a running minimum from the end (a frame ending at the partition's
           -- end would be aggregated again for every row)
           min(CASE WHEN kept THEN known_pos END) OVER (ORDER BY line DESC ROWS UNBOUNDED PRECEDING) AS hi,
           count(*) FILTER (WHERE kept) OVER (ORDER BY line ROWS UNBOUNDED PRECEDING) AS run
    FROM ordered
), numbered AS (
    SELECT *, row_number() OVER (PARTITION BY run, kept ORDER BY line) AS i,
           count(*) OVER (PARTITION BY run, kept) AS m
    FROM bounded
)
SELECT *, CASE WHEN kept THEN known_pos
               WHEN lo IS NULL AND hi IS NULL THEN i::numeric
               WHEN hi IS NULL THEN lo + i
               WHEN lo IS NULL THEN hi - (m + 1 - i)
               ELSE lo + (hi - lo) * i / (m + 1) END AS pos
FROM numbered;
ANALYZE fold_placed;

-- Versions no longer held (or held elsewhere in the order) end at this snapshot; the others begin.
UPDATE {history} v SET valid_to = {as_of}
WHERE v.valid_to IS NULL
  AND NOT EXISTS (SELECT 1 FROM fold_placed p WHERE p.kept AND p.row_hash = v.row_hash
                  AND p.occurrence = v.occurrence);

INSERT INTO {history} ({cols}, row_hash, occurrence, pos, valid_from)
SELECT {cols}, row_hash, occurrence, pos, {as_of} FROM fold_placed WHERE NOT kept;
