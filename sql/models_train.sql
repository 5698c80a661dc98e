-- Training aggregates and the registry, checked against numpy (test/reference/ref_models.py).
SET search_path = personalize, public;
SET client_min_messages = warning;

CREATE TABLE inter (user_id bigint, item_id bigint, weight real);
\copy inter FROM 'test/reference/models_interactions.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE ref_pop (item_id bigint, popularity float8, users int);
\copy ref_pop FROM 'test/reference/models_popularity.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE ref_knn (shrinkage float8, item_id bigint, rank int, neighbor bigint, similarity float8);
\copy ref_knn FROM 'test/reference/models_knn.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
-- rows that must be skipped and counted
INSERT INTO inter VALUES (NULL, 1001, 1), (10, NULL, 1), (10, 1001, NULL);

SELECT train('pop', 'popularity', 'inter') AS pop_version,
       train('knn', 'itemknn', 'inter', '{"neighbors": 5}') AS knn_version,
       train('als', 'als', 'inter', '{"factors": 8, "iterations": 10, "seed": 7}') AS als_version;

SELECT name, version, algorithm, options, rows, users, items, active, seconds >= 0 AS timed,
       model_info(model_export(name, version)) - 'bytes' - 'loss' AS info,
       bytes = (model_info(model_export(name, version)) ->> 'bytes')::bigint AS bytes_recorded
FROM models ORDER BY name;

-- popularity equals numpy's summed weights, exactly (integer weights)
SELECT count(*) AS items, count(*) FILTER (WHERE r.score = p.popularity) AS equal
FROM recommend('pop', NULL, 39) r JOIN ref_pop p USING (item_id);
-- ranked by popularity, ties by lower item id; reason 'popular'; the user's items
-- excluded (read from the source the model was trained from)
SELECT item_id, score, rank, reason FROM recommend('pop', 10, 5);
SELECT source FROM models WHERE name = 'pop';
WITH unseen AS (SELECT item_id, row_number() OVER (ORDER BY popularity DESC, item_id) AS rank FROM ref_pop
                WHERE item_id NOT IN (SELECT item_id FROM inter WHERE user_id = 10 AND item_id IS NOT NULL AND weight IS NOT NULL))
SELECT count(*) AS ranks, count(*) FILTER (WHERE r.item_id = u.item_id) AS same_as_unseen_by_popularity
FROM recommend('pop', 10, 5) r JOIN unseen u USING (rank);
SELECT count(*) FILTER (WHERE item_id IN (1001, 1002)) AS seen_shown_when_asked FROM recommend('pop', 10, 5, exclude_seen => false);
-- recommend_all: every user of the source, as recommend serves them
SELECT count(DISTINCT a.user_id) AS users,
       count(*) FILTER (WHERE a.item_id = r.item_id AND a.score = r.score) = count(*) AS equals_recommend
FROM recommend_all('pop', 3) a JOIN LATERAL recommend('pop', a.user_id, 3) r ON r.rank = a.rank;
SELECT bool_and(score('pop', 1, item_id) = popularity) AS score_is_popularity FROM ref_pop;

-- item-kNN neighbours equal numpy's cosine top-5, for shrinkage 0 and 10
SELECT train('knn10', 'itemknn', 'inter', '{"neighbors": 5, "shrinkage": 10}') AS knn10_version;
SELECT x.shrinkage, count(*) AS ranks,
       count(*) FILTER (WHERE abs(s.score - x.similarity) < 1e-5) AS same_similarity,
       count(*) FILTER (WHERE s.item_id = x.neighbor) AS same_neighbor
FROM ref_knn x,
     LATERAL (SELECT * FROM similar_items(CASE WHEN x.shrinkage = 0 THEN 'knn' ELSE 'knn10' END, x.item_id, 5)) s
WHERE s.rank = x.rank GROUP BY x.shrinkage ORDER BY 1;

-- item-kNN recommendation: Σ over seen items of weight × similarity, seen items excluded
WITH seen AS (SELECT item_id, sum(weight) AS w FROM inter WHERE user_id = 10 AND item_id IS NOT NULL AND weight IS NOT NULL GROUP BY item_id),
     byhand AS (SELECT n.item_id, sum(seen.w * n.score) AS score
                FROM seen, LATERAL similar_items('knn', seen.item_id, 5) n
                WHERE n.item_id NOT IN (SELECT item_id FROM seen) GROUP BY n.item_id)
SELECT count(*) AS ranks, count(*) FILTER (WHERE abs(r.score - b.score) < 1e-5) AS agree
FROM recommend('knn', 10, 5) r JOIN byhand b USING (item_id);

-- ALS: deterministic for a seed; more iterations lower the loss
SELECT (SELECT als_fit(user_id, item_id, weight, '{"factors": 8, "iterations": 4, "seed": 3}')::text FROM inter)
     = (SELECT als_fit(user_id, item_id, weight, '{"factors": 8, "iterations": 4, "seed": 3}')::text FROM inter) AS same_seed_same_model,
       (SELECT als_fit(user_id, item_id, weight, '{"factors": 8, "iterations": 4, "seed": 3}')::text FROM inter)
     = (SELECT als_fit(user_id, item_id, weight, '{"factors": 8, "iterations": 4, "seed": 4}')::text FROM inter) AS other_seed_same_model;
SELECT bool_and(l2 < l1) AS loss_decreases FROM (
  SELECT (model_info(als_fit(user_id, item_id, weight, jsonb_build_object('factors', 8, 'seed', 1, 'calculate_loss', true, 'iterations', n)))->>'loss')::float8 AS l2,
         (model_info(als_fit(user_id, item_id, weight, jsonb_build_object('factors', 8, 'seed', 1, 'calculate_loss', true, 'iterations', n - 1)))->>'loss')::float8 AS l1
  FROM inter, generate_series(2, 8) n GROUP BY n) t;

-- ALS serving: score is the dot product of the embeddings; recommend ranks by it
SELECT bool_and(abs(score('als', 10, i.id) - (u.embedding <#> i.embedding) * -1) < 1e-5) AS score_is_dot
FROM user_embeddings('als') u, item_embeddings('als') i WHERE u.id = 10;
WITH mine AS (SELECT i.id, -(u.embedding <#> i.embedding) AS s FROM user_embeddings('als') u, item_embeddings('als') i
              WHERE u.id = 10 AND i.id NOT IN (SELECT item_id FROM inter WHERE user_id = 10 AND item_id IS NOT NULL)
              ORDER BY s DESC, i.id LIMIT 5)
SELECT count(*) AS ranks, count(*) FILTER (WHERE r.item_id = m.id) AS same_items
FROM recommend('als', 10, 5) r JOIN (SELECT id, row_number() OVER (ORDER BY s DESC, id) AS rank FROM mine) m USING (rank);
SELECT count(*) AS rows, count(DISTINCT user_id) AS users FROM recommend_all('als', 3);
SELECT count(*) AS users_and_items FROM user_embeddings('als') UNION ALL SELECT count(*) FROM item_embeddings('als');

-- fold-in solves the normal equations (YᵀY + λI + Σ(c-1) y yᵀ) x = Σ c y, c = 1 + α w,
-- checked here in float8 SQL from the item embeddings (α = 2, λ = 0.05: the defaults)
CREATE TEMP TABLE given (item_id bigint, w float8);
INSERT INTO given VALUES (1001, 1), (1002, 3), (1007, 2), (1013, 1);
CREATE TEMP TABLE x AS SELECT ordinality AS a, v::float8 AS v
  FROM unnest(fold_in('als', ARRAY(SELECT item_id FROM given ORDER BY item_id), ARRAY(SELECT w::real FROM given ORDER BY item_id))) WITH ORDINALITY AS t(v, ordinality);
CREATE TEMP TABLE y AS SELECT e.id, d.a, d.v::float8 AS v
  FROM item_embeddings('als') e, unnest(e.embedding::real[]) WITH ORDINALITY AS d(v, a);
WITH yx AS (SELECT y.id, sum(y.v * x.v) AS s FROM y JOIN x USING (a) GROUP BY y.id),
     lhs AS (SELECT y.a, sum(y.v * yx.s * (1 + coalesce(2 * g.w, 0))) + 0.05 * min(x.v) AS v
             FROM y JOIN yx USING (id) JOIN x USING (a) LEFT JOIN given g ON g.item_id = y.id GROUP BY y.a),
     rhs AS (SELECT y.a, sum((1 + 2 * g.w) * y.v) AS v FROM y JOIN given g ON g.item_id = y.id GROUP BY y.a)
SELECT count(*) AS factors, max(abs(lhs.v - rhs.v)) / max(abs(rhs.v)) < 1e-4 AS solves_normal_equations
FROM lhs JOIN rhs USING (a);
-- recommend_for ranks the folded-in user's scores and leaves out the given items
SELECT count(*) AS ranks, bool_and(reason = 'model') AS model,
       bool_and(item_id NOT IN (SELECT item_id FROM given)) AS given_excluded
FROM recommend_for('als', ARRAY(SELECT item_id FROM given), ARRAY(SELECT w::real FROM given), 5);
-- no known item: popular items
SELECT item_id, rank, reason FROM recommend_for('als', '{424242}', NULL, 2);

-- candidates and exclude
SELECT count(*) AS ranks, bool_and(item_id IN (1001, 1010, 1020)) AS only_candidates
FROM recommend('als', 10, 10, false, '{1001,1010,1020,424242}');
SELECT count(*) AS ranks FROM recommend('als', 10, 10, false, '{1001,1010,1020}', '{1010}');
SELECT count(*) FILTER (WHERE item_id IN (1001, 1002)) AS excluded_shown FROM recommend('pop', NULL, 10, true, NULL, '{1001,1002}');
-- unknown user: popularity fallback
SELECT item_id, rank, reason FROM recommend('als', 424242, 3);
-- exclude_seen = false may return seen items
SELECT count(*) > 0 AS seen_returned FROM recommend('als', 10, 39, false) r
  WHERE r.item_id IN (SELECT item_id FROM inter WHERE user_id = 10);

-- versions: a new version becomes active; activate switches back; the cache follows
SELECT train('pop', 'popularity', 'SELECT user_id, item_id, 1 AS weight FROM inter WHERE item_id <> 1001') AS v2;
SELECT version, active FROM models WHERE name = 'pop' ORDER BY version;
SELECT count(*) FILTER (WHERE item_id = 1001) AS has_1001 FROM recommend('pop', NULL, 38);
SELECT activate('pop', 1);
SELECT count(*) FILTER (WHERE item_id = 1001) AS has_1001 FROM recommend('pop', NULL, 39);
SELECT train('pop', 'popularity', 'inter', '{"activate": false}') AS v3;
SELECT version, active FROM models WHERE name = 'pop' ORDER BY version;
-- dropped and retrained under the same name and version: the cache must not serve the old one
SELECT drop_model('knn10');
SELECT drop_model('pop');
SELECT train('pop', 'popularity', 'SELECT user_id, item_id, weight FROM inter WHERE item_id = 1001') AS again;
SELECT item_id, rank FROM recommend('pop', NULL, 1);

-- a stored version exports as one value that round-trips through its text form,
-- and imports as a new version that serves the same
SELECT model_export(name, version)::text::model::text = model_export(name, version)::text AS text_round_trip FROM models WHERE name = 'als';
SELECT model_info(model_export(name, version)::text::model) = model_info(model_export(name, version)) AS info_round_trip FROM models WHERE name = 'knn';
SELECT model_import('als_copy', model_export('als', 1)::text::model, activate => true) AS imported_version;
SELECT count(*) AS ranks, count(*) FILTER (WHERE a.item_id = b.item_id AND a.score = b.score) AS same
FROM recommend('als', 10, 5) a JOIN recommend('als_copy', 10, 5) b USING (rank);
SELECT (SELECT string_agg(bytes::text, '' ORDER BY chunk) FROM model_chunks WHERE name = 'als')
     = (SELECT string_agg(bytes::text, '' ORDER BY chunk) FROM model_chunks WHERE name = 'als_copy') AS same_stored_chunks;
