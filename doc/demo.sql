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
\echo '# 3. Customers: 3,000 of them, each with 8-30 timestamped purchases over 90 days, mostly in'
\echo '#    one favourite category, where a few best sellers take most of the sales'
CREATE TABLE purchases AS
SELECT u AS customer_id,
       CASE WHEN random() < 0.97 THEN 8 * (1 + floor(2499 * power(random(), 3))::int) + (u % 8)
            ELSE 1 + floor(random() * 19999)::int END AS item_id,
       timestamptz '2026-06-01 00:00+00' + random() * interval '90 days' AS occurred_at
FROM generate_series(1, 3000) u, LATERAL generate_series(1, 8 + (u * 7919) % 23) n;
SELECT count(*) AS purchases, count(DISTINCT customer_id) AS customers, count(DISTINCT item_id) AS items_sold
FROM purchases;

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

\echo
\echo '# 8. Recommendation models. Split each customer''s history by time: the last 20% is the test'
CREATE VIEW interactions AS SELECT customer_id AS user_id, item_id, 1::real AS weight, occurred_at FROM purchases;
CREATE TABLE split AS SELECT * FROM personalize.split_by_user_time('interactions', 0.2, 5);
SELECT part, count(*) AS interactions, count(DISTINCT user_id) AS customers FROM split GROUP BY part ORDER BY part;
CREATE VIEW train AS SELECT user_id, item_id, weight FROM split WHERE part = 'train';

\echo
\echo '# 9. Train three models on the training part (each call stores a version in personalize.models)'
SELECT personalize.train('shop_popular', 'popularity', 'train') AS popularity_version,
       personalize.train('shop_itemknn', 'itemknn', 'train', '{"neighbors": 50}') AS itemknn_version,
       personalize.train('shop_als', 'als', 'train', '{"factors": 32, "iterations": 10}') AS als_version;
SELECT name, version, algorithm, rows, users, items, round(seconds::numeric, 2) AS seconds, active
FROM personalize.models ORDER BY name;

\echo
\echo '# 10. Offline evaluation at 10 on the test part: each model recommends for every test customer'
CREATE TABLE test_customers AS SELECT DISTINCT user_id FROM split WHERE part = 'test';
CREATE TABLE seen AS SELECT user_id, array_agg(item_id) AS items FROM train GROUP BY user_id;
CREATE TABLE demo_recs AS
SELECT m.model, t.user_id, r.item_id, r.rank
FROM test_customers t JOIN seen USING (user_id)
CROSS JOIN (VALUES ('shop_popular'), ('shop_itemknn'), ('shop_als')) m(model),
LATERAL personalize.recommend(m.model, t.user_id, 10, exclude => seen.items) r;
SELECT m.model, e.users, round(e.precision_at_k::numeric, 4) AS precision_at_10,
       round(e.recall_at_k::numeric, 4) AS recall_at_10, round(e.ndcg_at_k::numeric, 4) AS ndcg_at_10,
       round(e.coverage_at_k::numeric, 3) AS coverage
FROM (VALUES ('shop_popular'), ('shop_itemknn'), ('shop_als')) m(model),
LATERAL personalize.ranking_metrics(
  format('SELECT user_id, item_id, rank FROM demo_recs WHERE model = %L', m.model),
  'SELECT user_id, item_id FROM split WHERE part = ''test''', 10) e;

\echo
\echo '# 11. Customer 42 side by side, and a brand-new visitor served by fold-in (no retraining)'
SELECT rank, p.item_id AS popular, k.item_id AS itemknn, a.item_id AS als, round(a.score::numeric, 3) AS als_score
FROM personalize.recommend('shop_popular', 42, 5) p
JOIN personalize.recommend('shop_itemknn', 42, 5) k USING (rank)
JOIN personalize.recommend('shop_als', 42, 5) a USING (rank);
SELECT r.rank, r.item_id, c.name AS category, r.reason
FROM personalize.recommend_for('shop_als', ARRAY[11, 19, 27, 35]::bigint[], k => 5) r
JOIN items i ON i.item_id = r.item_id JOIN categories c USING (category_id)
ORDER BY r.rank;

\echo
\echo '# 12. An A/B test of the three models: how many customers per arm to see a +20% lift on 5%?'
SELECT personalize.sample_size(0.05, 0.20) AS customers_per_arm_needed;
SELECT personalize.create_experiment('homepage_recs', ARRAY['popular', 'itemknn', 'als']) \g /dev/null
SELECT arm, count(*) AS customers
FROM (SELECT personalize.assign('homepage_recs', g) AS arm FROM generate_series(1, 30000) g) a
GROUP BY arm ORDER BY arm;

\echo '#     (simulated outcomes: conversion 5% / 5.5% / 6.5%, order value about 40 when converted)'
SELECT setseed(0.7) \g /dev/null
INSERT INTO personalize.outcomes (experiment, unit_id, metric, value, recorded_at)
SELECT 'homepage_recs', a.unit_id, m.metric, m.value, now()
FROM personalize.assignments a,
LATERAL (SELECT random() < CASE a.arm WHEN 'popular' THEN 0.05 WHEN 'itemknn' THEN 0.055 ELSE 0.065 END AS converted) c,
LATERAL (VALUES ('conversion', 1.0), ('revenue', 20 + 40 * random() + 0 * a.unit_id)) m(metric, value)
WHERE a.experiment = 'homepage_recs' AND c.converted;

\echo
\echo '# 13. The read-out: per arm rate, lift against the control with 95% intervals, p-values'
\echo '#     corrected for the four comparisons (Bonferroni and Benjamini-Hochberg)'
SELECT metric, arm, n, round(mean::numeric, 4) AS mean, round(lift_rel::numeric, 3) AS lift,
       round(lift_rel_low::numeric, 3) AS lift_low, round(lift_rel_high::numeric, 3) AS lift_high,
       round(p_value::numeric, 4) AS p, round(p_bh::numeric, 4) AS p_bh
FROM personalize.experiment_results WHERE experiment = 'homepage_recs' ORDER BY metric, arm;
SELECT experiment, srm_p_value > 0.001 AS sample_ratio_ok FROM personalize.experiment_health
WHERE experiment = 'homepage_recs';

\echo
\echo '# 14. Consent: customer 42 withdraws; their rows vanish for every reader, training included'
SELECT personalize.set_consent(c, 'personalization', true, 'signup') FROM generate_series(1, 3000) c \g /dev/null
SELECT personalize.protect('purchases', 'customer_id', 'personalization') \g /dev/null
SELECT personalize.set_consent(42, 'personalization', false, 'preference centre') \g /dev/null
CREATE ROLE demo_analyst;
GRANT USAGE ON SCHEMA personalize TO demo_analyst;
GRANT SELECT ON purchases, interactions TO demo_analyst;
GRANT SELECT ON personalize.consents TO demo_analyst;
SET ROLE demo_analyst;
SELECT count(*) FILTER (WHERE customer_id = 42) AS rows_of_42_visible, count(DISTINCT customer_id) AS customers
FROM purchases;
RESET ROLE;

\echo
\echo '# 15. A response model. An e-mail campaign went to a random half of the customers; who buys'
\echo '#     within a week? Features from the purchase history (simulated responses).'
SELECT setseed(0.15) \g /dev/null
CREATE TABLE campaign AS
SELECT h.*, CASE WHEN h.customer_id % 3 = 0 THEN 'new' ELSE 'returning' END AS segment,
       personalize.unit_hash('spring_mail', h.customer_id) < 0.5 AS emailed, false AS bought
FROM (SELECT p.customer_id, count(*) AS orders,
             extract(day FROM timestamptz '2026-09-01 00:00+00' - max(p.occurred_at))::int AS days_since_last,
             mode() WITHIN GROUP (ORDER BY c.name) AS favourite
      FROM purchases p JOIN items i USING (item_id) JOIN categories c USING (category_id)
      GROUP BY p.customer_id) h;
-- the e-mail helps those who like books or games and frequent buyers, and puts off the others
UPDATE campaign SET bought = random() < 1 / (1 + exp(1.6 - 0.04 * orders + 0.02 * days_since_last
       - CASE WHEN emailed THEN -0.4 + 0.02 * orders + CASE WHEN favourite IN ('books', 'games') THEN 1.5 ELSE 0 END
         ELSE 0 END));
CREATE VIEW campaign_train AS SELECT * FROM campaign WHERE personalize.unit_hash('holdout', customer_id) < 0.5;
CREATE VIEW campaign_test AS SELECT * FROM campaign WHERE personalize.unit_hash('holdout', customer_id) >= 0.5;
-- balanced class weights (buyers count as much as non-buyers) help ranking, but inflate probabilities
SELECT personalize.train_classifier('buyers', 'campaign_train', 'bought', '{orders,days_since_last,favourite,emailed}',
                                    '{"l2": 0.5, "standardize": true, "class_weight": "balanced"}') AS version;
SELECT term, round(coefficient::numeric, 4) AS coefficient, round(std_error::numeric, 4) AS std_error,
       round(p_value::numeric, 4) AS p
FROM personalize.coefficients('buyers') WHERE feature IS DISTINCT FROM 'favourite' OR level IN ('books', 'games');

\echo
\echo '# 16. Discrimination and calibration on the held-out half, before and after Platt scaling'
\echo '#     (fitted on the training half: the test half stays unseen)'
CREATE TABLE raw_scores AS SELECT c.bought, personalize.predict('buyers', c) AS p FROM campaign_test c;
SELECT personalize.calibrate('buyers', 'campaign_train', 'platt') AS calibrated_version;
SELECT 'raw' AS scores, round((m).auc::numeric, 3) AS auc, round((m).log_loss::numeric, 4) AS log_loss,
       round((m).ece::numeric, 4) AS ece FROM (SELECT personalize.classification_metrics(bought, p) AS m FROM raw_scores) s
UNION ALL
SELECT 'calibrated', round((m).auc::numeric, 3), round((m).log_loss::numeric, 4), round((m).ece::numeric, 4)
FROM (SELECT personalize.classification_metrics(c.bought, personalize.predict('buyers', c)) AS m FROM campaign_test c) s;

\echo
\echo '# 17. Fairness of targeting "p >= 0.35" across new and returning customers (fairlearn definitions)'
SELECT group_value, n, round(selection_rate::numeric, 3) AS selection_rate, round(tpr::numeric, 3) AS tpr,
       round(fpr::numeric, 3) AS fpr
FROM personalize.fairness_by_group('SELECT c.segment, c.bought, personalize.predict(''buyers'', c) AS p FROM campaign_test c',
                                   'segment', 'bought', 'p >= 0.35') ORDER BY group_value;
SELECT round(demographic_parity_difference::numeric, 3) AS demographic_parity_difference,
       round(equalized_odds_difference::numeric, 3) AS equalized_odds_difference
FROM personalize.fairness_summary('SELECT c.segment, c.bought, personalize.predict(''buyers'', c) AS p FROM campaign_test c',
                                  'segment', 'bought', 'p >= 0.35');

\echo
\echo '# 18. Whom to e-mail: the customers who buy *because* of it. A two-model uplift model, read out'
\echo '#     on the held-out half: Qini coefficient, AUUC, uplift in the top 30%, and by decile'
SELECT personalize.train_uplift('email_uplift', 'campaign_train', 'bought', 'emailed',
                                '{orders,days_since_last,favourite}') AS version;
CREATE TABLE uplift_sample AS
SELECT personalize.uplift_sample(c.bought, c.emailed, personalize.uplift_score('email_uplift', c)) AS s FROM campaign_test c;
SELECT n, treated, control, round(qini_coefficient::numeric, 3) AS qini_coefficient, round(auuc::numeric, 3) AS auuc,
       round(uplift_at_k::numeric, 3) AS uplift_in_top_30
FROM uplift_sample, personalize.uplift_summary(s, 0.3);
SELECT bin AS decile, n_treated, n_control, round(rate_treated::numeric, 3) AS rate_emailed,
       round(rate_control::numeric, 3) AS rate_not, round(uplift::numeric, 3) AS uplift,
       round(uplift_low::numeric, 3) AS low, round(uplift_high::numeric, 3) AS high
FROM uplift_sample, personalize.uplift_by_percentile(s);
SELECT favourite, count(*) AS chosen
FROM (SELECT c.favourite FROM campaign c ORDER BY personalize.uplift_score('email_uplift', c) DESC
      LIMIT (SELECT count(*) * 3 / 10 FROM campaign)) t
GROUP BY favourite ORDER BY chosen DESC LIMIT 4;

\echo
\echo '# 19. The four-arm study (doc/study.md): A editorial lists, B collaborative (ALS), C hybrid'
\echo '#     (categories + purchases + daypart), D private (dp_als, epsilon 10). One assignment,'
\echo '#     one serving call, one read-out.'
-- arm A: the merchandisers' lists: best sellers, and per favourite category its best sellers
CREATE TABLE favourite AS
SELECT DISTINCT ON (t.user_id) t.user_id, c.name AS segment
FROM train t JOIN items USING (item_id) JOIN categories c USING (category_id)
GROUP BY t.user_id, c.name ORDER BY t.user_id, count(*) DESC, c.name;
CREATE TABLE curated AS
(SELECT item_id, row_number() OVER (ORDER BY count(*) DESC, item_id)::int AS position, NULL::text AS segment
 FROM train GROUP BY item_id ORDER BY position LIMIT 20)
UNION ALL
SELECT item_id, position, segment FROM (
  SELECT t.item_id, c.name AS segment, row_number() OVER (PARTITION BY c.name ORDER BY count(*) DESC, t.item_id)::int AS position
  FROM train t JOIN items USING (item_id) JOIN categories c USING (category_id) GROUP BY t.item_id, c.name) s
WHERE position <= 20;
-- arm C: item features and the daypart of each purchase (the WARP core learns contexts)
CREATE VIEW item_categories AS SELECT i.item_id, 'category:' || c.name AS feature FROM items i JOIN categories c USING (category_id);
CREATE VIEW train_in_context AS
SELECT user_id, item_id, weight, CASE WHEN extract(hour FROM occurred_at AT TIME ZONE 'UTC') < 12 THEN 'morning' ELSE 'evening' END AS context
FROM split WHERE part = 'train';
SELECT personalize.train('arm_a', 'editorial', 'curated', '{"segments": "favourite"}') AS a,
       personalize.train('arm_b', 'als', 'train', '{"factors": 32, "iterations": 10}') AS b,
       personalize.train('arm_c', 'hybrid', 'train_in_context', '{"core": "warp", "factors": 32, "iterations": 20, "item_features": "item_categories"}') AS c,
       personalize.train('arm_d', 'dp_als', 'train', '{"factors": 32, "iterations": 5, "epsilon": 10, "contributions": 30}') AS d \g /dev/null
SELECT name, algorithm, features, privacy ->> 'epsilon' AS epsilon, round((privacy ->> 'noise_std')::numeric, 1) AS noise_std
FROM personalize.models WHERE name LIKE 'arm_%' ORDER BY name;

\echo
\echo '#     every test customer is assigned an arm and served 5 items by that arm''s model, in the evening;'
\echo '#     the outcome "conversion" is whether one of the 5 is among their later (test) purchases'
SELECT personalize.create_experiment('four_arms', ARRAY['A_editorial', 'B_collaborative', 'C_hybrid', 'D_private']) \g /dev/null
CREATE TABLE served AS
SELECT a.unit_id AS user_id, a.arm, r.item_id, r.rank, r.reason
FROM (SELECT user_id AS unit_id, personalize.assign('four_arms', user_id) AS arm FROM test_customers) a
JOIN seen s ON s.user_id = a.unit_id,
LATERAL personalize.recommend(CASE a.arm WHEN 'A_editorial' THEN 'arm_a' WHEN 'B_collaborative' THEN 'arm_b'
                                         WHEN 'C_hybrid' THEN 'arm_c' ELSE 'arm_d' END,
                              a.unit_id, 5, exclude => s.items, context => 'evening') r;
SELECT arm, count(DISTINCT user_id) AS customers, min(reason) AS a_reason FROM served GROUP BY arm ORDER BY arm;
SELECT count(personalize.log_outcome('four_arms', user_id, 'conversion'))
FROM (SELECT DISTINCT s.user_id FROM served s JOIN split t ON t.user_id = s.user_id AND t.item_id = s.item_id AND t.part = 'test') c \g /dev/null
SELECT arm, n, round(mean::numeric, 3) AS conversion, round(lift_rel::numeric, 2) AS lift_vs_a,
       round(p_value::numeric, 4) AS p, round(p_bh::numeric, 4) AS p_bh
FROM personalize.experiment_results WHERE experiment = 'four_arms' AND metric = 'conversion' ORDER BY arm;

\echo
\echo '#     fairness: do the arms expose the categories in proportion to the catalogue?'
SELECT s.arm, e.group_value AS category, round(e.exposure_share::numeric, 3) AS exposure_share, round(e.exposure_ratio::numeric, 2) AS ratio
FROM (SELECT DISTINCT arm FROM served) s,
LATERAL personalize.exposure_by_group(format('SELECT item_id, rank FROM served WHERE arm = %L', s.arm),
  'SELECT i.item_id, c.name AS category FROM items i JOIN categories c USING (category_id)', 'item_id', 'category') e
WHERE e.group_value IN ('shoes', 'garden') ORDER BY s.arm, e.group_value;

\echo
\echo '#     and what privacy costs: NDCG@10 of the private variants at each epsilon next to ALS'
CREATE VIEW test_rows AS SELECT user_id, item_id FROM split WHERE part = 'test';
SELECT variant, epsilon, round(ndcg_at_k::numeric, 4) AS ndcg_at_10, round(ndcg_vs_als::numeric, 2) AS vs_als
FROM personalize.privacy_report('train', 'test_rows', '{1,10,Infinity}',
  '{"als": {"factors": 32, "iterations": 5}, "dp_als": {"contributions": 30}, "dp_popularity": {"contributions": 10}}');

\echo
\echo '# 20. Operations: a nightly refresh of an ALS model, scheduled with pg_cron, with a data-quality'
\echo '#     gate and a champion/challenger comparison. The feed: the purchases, moved so that the newest'
\echo '#     are from the last hour; all but the last day is there. The first refresh has no champion.'
CREATE VIEW shifted AS
SELECT customer_id AS user_id, item_id, 1::real AS weight,
       occurred_at + (now() - interval '1 hour' - (SELECT max(occurred_at) FROM purchases)) AS occurred_at
FROM purchases;
CREATE TABLE feed AS SELECT * FROM shifted WHERE occurred_at < now() - interval '1 day';
SELECT personalize.register_refresh('shop_nightly', 'feed', 'als', '{"factors": 32, "iterations": 10}',
                                    '{"metric": "ndcg_at_k", "k": 10, "max_drop": 0.01, "holdout": "1 day"}') \g /dev/null
SELECT status, reason FROM personalize.refresh('shop_nightly');
SELECT check_name, severity, passed, round(observed::numeric, 4) AS observed, detail
FROM personalize.check_interactions('feed', '{"model": "shop_nightly"}') WHERE check_name <> 'rows';

\echo
\echo '#     A day of purchases arrives, and with it a tracking bug: 40 rows without a customer id.'
\echo '#     pg_cron runs the refresh (every minute for the demo; waiting for it):'
INSERT INTO feed SELECT * FROM shifted WHERE occurred_at >= now() - interval '1 day';
INSERT INTO feed SELECT NULL, item_id, 1, now() - interval '10 minutes' FROM purchases LIMIT 40;
-- pg_cron keeps its jobs in cron.database_name: here, or reached through dblink
DO $$ BEGIN
	IF current_database() = current_setting('cron.database_name') THEN
		CREATE EXTENSION IF NOT EXISTS pg_cron;
	ELSE
		CREATE EXTENSION IF NOT EXISTS dblink;
	END IF;
END $$;
SELECT personalize.schedule_refresh('shop_nightly', '* * * * *') AS jobid \g /dev/null
CREATE FUNCTION pg_temp.wait_for_runs(n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1 .. 300 LOOP
		EXIT WHEN (SELECT count(*) FROM personalize.refresh_runs WHERE model_name = 'shop_nightly') >= n;
		PERFORM pg_sleep(0.5);
	END LOOP;
END $$;
SELECT pg_temp.wait_for_runs(2) \g /dev/null
SELECT run_id, status, reason, run_by, champion_version, challenger_version FROM personalize.refresh_runs
WHERE model_name = 'shop_nightly' ORDER BY run_id DESC LIMIT 1;
SELECT model_name, active_version, status, needs_attention FROM personalize.refresh_status;

\echo
\echo '#     The feed is fixed; the next scheduled run trains on the new day, compares, and promotes:'
DELETE FROM feed WHERE user_id IS NULL;
SELECT pg_temp.wait_for_runs(3) \g /dev/null
SELECT model_name, schedule, last_status FROM personalize.refresh_jobs;
SELECT personalize.unschedule_refresh('shop_nightly') \g /dev/null
SELECT run_id, status, champion_version, challenger_version, warm_start, metric,
       round(champion_score::numeric, 4) AS champion, round(challenger_score::numeric, 4) AS challenger,
       (challenger_metrics ->> 'users')::int AS users, training_rows
FROM personalize.refresh_runs WHERE model_name = 'shop_nightly' ORDER BY run_id DESC LIMIT 1;
SELECT d ->> 'metric' AS drift_of_the_new_day, round((d ->> 'value')::numeric, 4) AS value, d ->> 'drifted' AS drifted
FROM personalize.refresh_runs r, jsonb_array_elements(r.drift) d
WHERE r.run_id = (SELECT max(run_id) FROM personalize.refresh_runs WHERE model_name = 'shop_nightly');
\echo '#     (personalize.rollback(''shop_nightly'') would bring version 1 back.)'
