-- 死亡冒领金额 per town: the sum of tonight's SS06 (pension after death) and EM03 (finance
-- payments after death) amounts, in yuan. Reads tonight's materialised findings (night.findings).
SELECT '死亡冒领金额' AS indicator, t.town,
       coalesce(sum(f.amount), 0) AS numerator, NULL::numeric AS denominator
FROM night.towns t
LEFT JOIN night.findings f ON f.town = t.town AND f.rule_code IN ('SS06', 'EM03')
GROUP BY t.town
