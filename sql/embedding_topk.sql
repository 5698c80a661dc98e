-- Exact top-K through the planner's top-N sort, checked against numpy (float64).
SET search_path = personalize, public;

CREATE TABLE corpus (id int PRIMARY KEY, e embedding(16));
\copy corpus FROM 'test/reference/topk_corpus.tsv' WITH (FORMAT csv, DELIMITER E'\t')
CREATE TEMP TABLE queries (id int, q embedding(16));
\copy queries FROM 'test/reference/topk_queries.tsv' WITH (FORMAT csv, DELIMITER E'\t')
CREATE TEMP TABLE expected (query_id int, op text, rank int, id int, score float8);
\copy expected FROM 'test/reference/topk_expected.tsv' WITH (FORMAT csv, DELIMITER E'\t')
ANALYZE corpus;

EXPLAIN (COSTS OFF) SELECT id FROM corpus ORDER BY e <#> '[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]' LIMIT 10;

CREATE TEMP TABLE ours AS
SELECT q.id AS query_id, '<->' AS op, t.rank, t.id FROM queries q,
  LATERAL (SELECT id, row_number() OVER () AS rank FROM (SELECT id FROM corpus ORDER BY e <-> q.q LIMIT 10) s) t
UNION ALL
SELECT q.id, '<#>', t.rank, t.id FROM queries q,
  LATERAL (SELECT id, row_number() OVER () AS rank FROM (SELECT id FROM corpus ORDER BY e <#> q.q LIMIT 10) s) t
UNION ALL
SELECT q.id, '<=>', t.rank, t.id FROM queries q,
  LATERAL (SELECT id, row_number() OVER () AS rank FROM (SELECT id FROM corpus ORDER BY e <=> q.q LIMIT 10) s) t;

-- same ids in the same order as the float64 reference
SELECT op, count(*) AS ranks, count(*) FILTER (WHERE o.id = x.id) AS agree
FROM expected x LEFT JOIN ours o USING (query_id, op, rank) GROUP BY op ORDER BY op;

-- and as a brute force written in plain SQL over float8 (no operator of ours)
WITH f AS (SELECT id, e::float8[] AS v FROM corpus),
     brute AS (
  SELECT q.id AS query_id, f.id,
         row_number() OVER (PARTITION BY q.id ORDER BY sum((x.a - x.b) ^ 2), f.id) AS rank
  FROM queries q CROSS JOIN f,
       LATERAL unnest(f.v, q.q::float8[]) AS x(a, b)
  GROUP BY q.id, f.id)
SELECT count(*) AS ranks, count(*) FILTER (WHERE b.id = o.id) AS agree
FROM brute b JOIN ours o ON o.query_id = b.query_id AND o.rank = b.rank AND o.op = '<->'
WHERE b.rank <= 10;

DROP TABLE corpus;
