-- The side sources read by the new algorithms (hybrid features, editorial segments, a
-- dp_popularity catalog) are read as the caller: row-level security and privileges apply.
BEGIN;
SET client_min_messages = warning;
SELECT plan(7);

CREATE ROLE arms_reader;
SELECT personalize.grant_analyst('arms_reader');
CREATE TABLE public.arms_clicks AS SELECT (g % 20)::bigint AS user_id, (g % 13)::bigint AS item_id, 1::real AS weight
FROM generate_series(1, 200) g;
CREATE TABLE public.arms_features AS SELECT DISTINCT item_id, 'genre:' || (item_id % 3) AS feature FROM public.arms_clicks;
CREATE TABLE public.arms_segments AS SELECT DISTINCT user_id, CASE WHEN user_id < 10 THEN 'young' ELSE 'old' END AS segment FROM public.arms_clicks;
CREATE TABLE public.arms_lists AS SELECT item_id, (item_id + 1)::int AS position, 'young'::text AS segment FROM generate_series(1, 5) item_id;
CREATE TABLE public.arms_catalog AS SELECT DISTINCT item_id FROM public.arms_clicks;
-- the reader sees genre:0 features only, users below 10, catalog items below 5
ALTER TABLE public.arms_features ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_genre_0 ON public.arms_features FOR SELECT TO arms_reader USING (feature = 'genre:0');
ALTER TABLE public.arms_segments ENABLE ROW LEVEL SECURITY;
CREATE POLICY young_only ON public.arms_segments FOR SELECT TO arms_reader USING (user_id < 10);
ALTER TABLE public.arms_catalog ENABLE ROW LEVEL SECURITY;
CREATE POLICY few_items ON public.arms_catalog FOR SELECT TO arms_reader USING (item_id < 5);
GRANT SELECT ON public.arms_clicks, public.arms_features, public.arms_segments, public.arms_lists, public.arms_catalog TO arms_reader;
CREATE TABLE public.arms_hidden AS SELECT * FROM public.arms_features;

SET ROLE arms_reader;
SELECT lives_ok($$SELECT personalize.train('arms_h', 'hybrid', 'public.arms_clicks',
                  '{"factors": 4, "iterations": 2, "item_features": "public.arms_features"}')$$, 'hybrid trained by the reader');
SELECT is((SELECT personalize.model_info(personalize.model_export(name, version)) ->> 'item_features' FROM personalize.models WHERE name = 'arms_h'), '1',
          'the hybrid saw only the feature rows the policy shows');
SELECT throws_ok($$SELECT personalize.train('arms_x', 'hybrid', 'public.arms_clicks', '{"item_features": "public.arms_hidden"}')$$,
                 '42501', NULL, 'a features table the caller may not read');
SELECT lives_ok($$SELECT personalize.train('arms_e', 'editorial', 'public.arms_lists', '{"segments": "public.arms_segments"}')$$,
                'editorial trained by the reader');
SELECT is((SELECT users FROM personalize.models WHERE name = 'arms_e'), 10::bigint, 'the editorial model saw only the visible segment rows');
SELECT lives_ok($$SELECT personalize.train('arms_p', 'dp_popularity', 'public.arms_clicks',
                  '{"epsilon": 1000, "contributions": 20, "catalog": "public.arms_catalog"}')$$, 'dp_popularity trained by the reader');
SELECT is((SELECT items FROM personalize.models WHERE name = 'arms_p'), 5::bigint, 'dp_popularity released only the visible catalog');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
