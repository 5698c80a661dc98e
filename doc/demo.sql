-- pg_personalize demo: a small generated shop, told in SQL.
\pset footer off
\echo
\echo '# 1. Install and make the operators visible'
CREATE EXTENSION pg_personalize;
SET search_path = public, personalize;

\echo
\echo '# 2. A catalog of 20,000 items in 8 categories; each item has a 32-d content embedding'
\echo '#    near its category centre (generated, deterministic).'
SELECT setseed(0.2026) \g /dev/null
CREATE TABLE categories AS
SELECT c AS category_id, (ARRAY['shoes','jackets','bags','watches','books','games','garden','kitchen'])[c] AS name,
       (SELECT array_agg(random() * 2 - 1) FROM generate_series(1, 32) WHERE c > 0)::embedding(32) AS centre
FROM generate_series(1, 8) c;
CREATE TABLE items AS
SELECT i AS item_id, 1 + (i % 8) AS category_id,
       (SELECT centre + (SELECT array_agg((random() - 0.5) * 0.8) FROM generate_series(1, 32) WHERE i > 0)::embedding
        FROM categories WHERE category_id = 1 + (i % 8)) AS e
FROM generate_series(1, 20000) i;
ALTER TABLE items ADD PRIMARY KEY (item_id);
ANALYZE items;
SELECT count(*) AS items, (SELECT dims(e) FROM items LIMIT 1) AS dims, pg_size_pretty(pg_total_relation_size('items')) AS size FROM items;

\echo
\echo '# 3. Customers: 2,000 of them, each bought 5-15 items mostly from one favourite category'
CREATE TABLE purchases AS
SELECT u AS customer_id, i.item_id
FROM generate_series(1, 2000) u,
     LATERAL (SELECT item_id FROM items
              WHERE category_id = 1 + (u % 8) OR random() < 0.002
              ORDER BY random() LIMIT 5 + (u % 11)) i;
SELECT count(*) AS purchases, count(DISTINCT customer_id) AS customers FROM purchases;

\echo
\echo '# 4. A taste vector per customer: the average of what they bought (avg(embedding) runs in parallel)'
CREATE TABLE tastes AS
SELECT customer_id, avg(e) AS taste FROM purchases JOIN items USING (item_id) GROUP BY customer_id;

\echo
\echo '# 5. Exact top-5 items for customer 42 by inner product with their taste, not yet bought'
SELECT i.item_id, c.name AS category, round((-(i.e <#> t.taste))::numeric, 3) AS score
FROM tastes t, items i JOIN categories c USING (category_id)
WHERE t.customer_id = 42
  AND NOT EXISTS (SELECT 1 FROM purchases p WHERE p.customer_id = 42 AND p.item_id = i.item_id)
ORDER BY i.e <#> t.taste
LIMIT 5;
SELECT c.name AS favourite_category_of_42, count(*) AS bought
FROM purchases p JOIN items USING (item_id) JOIN categories c USING (category_id)
WHERE customer_id = 42 GROUP BY c.name ORDER BY bought DESC LIMIT 1;

\echo
\echo '# 6. Items most similar to item 7 (cosine distance) and the plan: a top-N heapsort over a scan'
SELECT i.item_id, c.name AS category, round((i.e <=> x.e)::numeric, 4) AS cosine_distance
FROM items i JOIN categories c USING (category_id), items x
WHERE x.item_id = 7 AND i.item_id <> 7
ORDER BY i.e <=> x.e LIMIT 5;
EXPLAIN (COSTS OFF) SELECT item_id FROM items ORDER BY e <-> (SELECT e FROM items WHERE item_id = 7) LIMIT 5;

\echo
\echo '# 7. How well do category centres explain purchases? Share of each customer''s purchases'
\echo '#    in the category whose centre is nearest (L2) to their taste'
SELECT round(avg(hit)::numeric, 3) AS share_in_nearest_category
FROM (SELECT p.customer_id,
             (i.category_id = (SELECT category_id FROM categories ORDER BY centre <-> t.taste LIMIT 1))::int AS hit
      FROM purchases p JOIN items i USING (item_id) JOIN tastes t USING (customer_id)) s;
