-- The rows of one folded snapshot ({as_of}, file {file_id}) as its core partition held them: the
-- versions valid that day in the order of their places, numbered with the snapshot's line numbers.
SELECT {as_of}::date AS as_of, {file_id}::bigint AS file_id, n.line AS row_number, {cols}
FROM (SELECT {cols}, row_number() OVER (ORDER BY pos) AS rank FROM {history}
      WHERE valid_from <= {as_of} AND (valid_to IS NULL OR valid_to > {as_of})) v
JOIN (SELECT line, row_number() OVER (ORDER BY line) AS rank FROM generate_series({first_row}, {last_row}) AS line
      WHERE NOT line = ANY ({missing_rows})) n USING (rank)
