-- Distances, norms, arithmetic, ordering, aggregates.
SET search_path = personalize, public;

CREATE TEMP TABLE reference (id int, a text, b text, l2 float8, inner_p float8, cosine float8, norm_a float8);
\copy reference FROM 'test/reference/embedding_distances.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)

-- against numpy's float64 values: float4 accumulation keeps about 6 significant digits
-- (cosine distance is compared absolutely: it cancels near 0)
SELECT count(*) AS pairs,
       max(abs((a::embedding <-> b::embedding) - l2) / l2) < 1e-5 AS l2_ok,
       max(abs((a::embedding <#> b::embedding) + inner_p)
           / (norm_a * (b::embedding <-> array_fill(0, ARRAY[dims(b::embedding)])::embedding))) < 1e-5 AS inner_ok,
       max(abs((a::embedding <=> b::embedding) - cosine)) < 1e-5 AS cosine_ok,
       max(abs(norm(a::embedding) - norm_a) / norm_a) < 1e-12 AS norm_ok,
       bool_and(l2_distance(a::embedding, b::embedding) = (a::embedding <-> b::embedding)) AS l2_function,
       bool_and(inner_product(a::embedding, b::embedding) = -(a::embedding <#> b::embedding)) AS inner_function,
       bool_and(cosine_distance(a::embedding, b::embedding) = (a::embedding <=> b::embedding)) AS cosine_function
FROM reference;

SELECT '[0,0]'::embedding <-> '[3,4]', '[1,2]'::embedding <#> '[3,4]', '[1,0]'::embedding <=> '[0,1]',
       '[1,1]'::embedding <=> '[2,2]', '[1,1]'::embedding <=> '[-1,-1]';
SELECT '[0,0]'::embedding <=> '[1,1]' AS zero_vector_cosine;
SELECT '[1,2]'::embedding <-> '[1,2,3]';
SELECT '[1,2]'::embedding <#> '[1,2,3]';
SELECT '[1,2]'::embedding <=> '[1,2,3]';

SELECT dims('[1,2,3]'), norm('[3,4]'), personalize.normalize('[3,4]'), l2_normalize('[3,4]'),
       l2_normalize('[0,0]') AS zero_stays_zero, abs(norm('[3e38,3e38]') / (sqrt(2::float8) * 3e38::real) - 1) < 1e-12 AS no_overflow;
SELECT count(*) AS rows, max(abs(norm(l2_normalize(a::embedding)) - 1)) < 1e-6 AS unit_length,
       bool_and(l2_normalize(a::embedding) = personalize.normalize(a::embedding)) AS same_function
FROM reference;

-- element-wise arithmetic
SELECT '[1,2,3]'::embedding + '[4,5,6]', '[1,2,3]'::embedding - '[4,5,6]', '[1,2,3]'::embedding * '[4,5,6]';
SELECT '[1,2]'::embedding + '[1,2,3]';
SELECT '[3e38]'::embedding + '[3e38]';
SELECT '[3e38]'::embedding * '[10]';

-- ordering and equality: btree and hash opclasses
SELECT '[1,2]'::embedding = '[1,2]', '[1,2]'::embedding = '[1,2,0]', '[-0]'::embedding = '[0]',
       '[1,2]'::embedding < '[1,3]', '[1,2]'::embedding < '[1,2,0]', '[2]'::embedding > '[1,9]';
CREATE TEMP TABLE dup (e embedding);
INSERT INTO dup VALUES ('[1,2]'), ('[1,2]'), ('[0,1]'), ('[-0,1]'), ('[1,2,3]'), ('[3]');
SELECT DISTINCT e FROM dup ORDER BY e;
SET enable_hashagg = off;
SELECT e, count(*) FROM dup GROUP BY e ORDER BY e;
RESET enable_hashagg;
SET enable_sort = off;
SELECT e, count(*) FROM dup GROUP BY e ORDER BY count(*) DESC, e::text;
RESET enable_sort;
CREATE TEMP TABLE uniq (e embedding UNIQUE);
INSERT INTO uniq VALUES ('[1,2]'), ('[2,1]');
INSERT INTO uniq VALUES ('[1,2]');
SELECT count(*) FROM dup a JOIN dup b ON a.e = b.e;

-- sum and avg, against float8 arithmetic over the same elements
CREATE TEMP TABLE vecs AS
SELECT g % 3 AS grp, ARRAY[g, g * 0.5, -g]::real[]::embedding AS e FROM generate_series(1, 1000) g;
INSERT INTO vecs VALUES (0, NULL);
SELECT grp, sum(e), avg(e) FROM vecs GROUP BY grp ORDER BY grp;
SELECT v.grp, v.s::float8[] = ref.s AS sum_matches, v.a::float8[] = ref.a AS avg_matches
FROM (SELECT grp, sum(e) AS s, avg(e) AS a FROM vecs GROUP BY grp) v
JOIN (SELECT g % 3 AS grp, ARRAY[sum(g), sum(g * 0.5), sum(-g)]::real[]::float8[] AS s,
             ARRAY[avg(g), avg(g * 0.5), avg(-g)]::real[]::float8[] AS a
      FROM generate_series(1, 1000) g GROUP BY 1) ref USING (grp)
ORDER BY grp;
SELECT sum(e), avg(e) FROM vecs WHERE false;
SELECT avg(e) FROM (VALUES ('[1,2]'::embedding), ('[1,2,3]')) v(e);
SELECT sum(e) FROM (VALUES ('[3e38]'::embedding), ('[3e38]')) v(e);
-- as window aggregates (state copied, not updated in place)
SELECT g, avg(e) OVER (ORDER BY g ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
FROM (SELECT g, ARRAY[g]::embedding AS e FROM generate_series(1, 4) g) s;
