-- 死亡冒领金额 per town: the sum of tonight's SS06 (pension after death) and EM03 (finance
-- payments after death) amounts, in yuan. Reads the rule rows tonight's partitions have found
-- (night.finding_parts; a town's rows are all in the partition that evaluates this town).
SELECT '死亡冒领金额' AS indicator, t.town,
       coalesce(sum(f.amount), 0) AS numerator, NULL::numeric AS denominator
FROM night.towns t
LEFT JOIN night.finding_parts f ON f.town = t.town AND f.rule_code IN ('SS06', 'EM03')
GROUP BY t.town
