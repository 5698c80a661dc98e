-- Fixtures written with the old version, before ALTER EXTENSION ... UPDATE:
-- models of every algorithm, an experiment with outcomes, consents and a
-- protected table, a forgotten subject. What serving returns and every row of
-- the extension's catalog tables are saved in public.upgrade_* to compare after.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SELECT setseed(0.42);
CREATE TABLE public.clicks AS
SELECT (g % 300)::bigint AS user_id, ((g * 7919) % 97 * (g % 3 + 1) % 120)::bigint AS item_id,
       (1 + g % 4)::real AS weight, timestamptz '2026-01-01' + g * interval '1 minute' AS occurred_at
FROM generate_series(1, 6000) g;
SELECT personalize.train('up_pop', 'popularity', 'public.clicks');
SELECT personalize.train('up_knn', 'itemknn', 'public.clicks', '{"neighbors": 20}');
SELECT personalize.train('up_als', 'als', 'public.clicks', '{"factors": 8, "iterations": 5, "seed": 3}');
SELECT personalize.train('up_als', 'als', 'public.clicks', '{"factors": 8, "iterations": 3, "seed": 4, "activate": false}');

SELECT personalize.create_experiment('up_exp', ARRAY['control', 'treatment']);
SELECT count(personalize.assign('up_exp', u)) FROM generate_series(1, 500) u;
SELECT count(personalize.log_outcome('up_exp', u, 'conversion')) FROM generate_series(1, 500, 7) u;

SELECT count(personalize.set_consent(u, 'personalization', u % 3 <> 0)) FROM generate_series(0, 299) u;
SELECT personalize.set_consent(5, 'personalization', false);
CREATE TABLE public.protected_clicks AS SELECT * FROM public.clicks;
SELECT personalize.protect('public.protected_clicks', 'user_id', 'personalization');
-- a protected table with an exempt role (0.1.0 wrote the role's name into the policy)
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'upgrade_exempt') THEN CREATE ROLE upgrade_exempt; END IF;
END $$;
CREATE TABLE public.exempt_clicks AS SELECT * FROM public.clicks;
GRANT SELECT ON public.exempt_clicks TO upgrade_exempt;
SELECT personalize.protect('public.exempt_clicks', 'user_id', 'personalization', 'upgrade_exempt');
SELECT personalize.forget(7);

-- what serving returns now
CREATE TABLE public.upgrade_served AS
SELECT 'recommend' AS fn, m.name, u.user_id, r.item_id, r.score, r.rank
FROM (VALUES ('up_pop'), ('up_knn'), ('up_als')) m(name), generate_series(0, 40, 4) u(user_id),
     LATERAL personalize.recommend(m.name, u.user_id, 10) r
UNION ALL
SELECT 'similar_items', m.name, i.item_id, r.item_id, r.score, r.rank
FROM (VALUES ('up_knn'), ('up_als')) m(name), generate_series(0, 30, 5) i(item_id),
     LATERAL personalize.similar_items(m.name, i.item_id, 5) r;

-- every row of every catalog table, by its columns as of the old version
CREATE TABLE public.upgrade_rows AS
SELECT cfg.rel::regclass::text AS tbl, NULL::text AS columns, NULL::text[] AS rows
FROM pg_extension e, LATERAL unnest(e.extconfig) AS cfg(rel)
WHERE e.extname = 'pg_personalize' AND (SELECT relkind FROM pg_class WHERE oid = cfg.rel) = 'r';
-- (0.2.0 moves personalize.models.model into personalize.model_chunks: the
-- images are compared on their own, through public.upgrade_images)
UPDATE public.upgrade_rows SET columns = (
  SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
  WHERE attrelid = tbl::regclass AND attnum > 0 AND NOT attisdropped
    AND NOT (tbl = 'personalize.models' AND attname = 'model'));
-- every stored model as the format-2 image the new version must store (model_in converts)
CREATE TABLE public.upgrade_images AS
SELECT name, version, md5(model::text::personalize.model::text) AS image FROM personalize.models;
DO $$
DECLARE r record; rows_now text[];
BEGIN
  FOR r IN SELECT * FROM public.upgrade_rows LOOP
    EXECUTE format('SELECT coalesce(array_agg(md5(t::text) ORDER BY md5(t::text)), ''{}'') FROM (SELECT %s FROM %s) t',
                   r.columns, r.tbl) INTO rows_now;
    UPDATE public.upgrade_rows SET rows = rows_now WHERE tbl = r.tbl;
  END LOOP;
END $$;
SELECT tbl, cardinality(rows) FROM public.upgrade_rows ORDER BY tbl;
