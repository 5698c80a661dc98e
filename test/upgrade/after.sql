-- After ALTER EXTENSION ... UPDATE: serving returns what it returned before,
-- and no row of a catalog table changed (compared by the old version's columns).
\set ON_ERROR_STOP on
SET client_min_messages = notice;
DO $$
DECLARE tab record; rows_now text[]; mismatches bigint;
BEGIN
  FOR tab IN SELECT * FROM public.upgrade_rows LOOP
    EXECUTE format('SELECT coalesce(array_agg(md5(t::text) ORDER BY md5(t::text)), ''{}'') FROM (SELECT %s FROM %s) t',
                   tab.columns, tab.tbl) INTO rows_now;
    IF rows_now IS DISTINCT FROM tab.rows THEN
      RAISE EXCEPTION 'upgrade changed rows of %: % rows before, % after', tab.tbl, cardinality(tab.rows), cardinality(rows_now);
    END IF;
  END LOOP;

  SELECT count(*) INTO mismatches FROM public.upgrade_images i
  WHERE md5(personalize.model_export(i.name, i.version)::text) IS DISTINCT FROM i.image;
  IF mismatches > 0 OR (SELECT count(*) FROM public.upgrade_images) = 0 THEN
    RAISE EXCEPTION 'upgrade changed % stored models (or kept none)', mismatches;
  END IF;

  WITH now_served AS (
    SELECT 'recommend' AS fn, m.name, u.user_id, r.item_id, r.score, r.rank
    FROM (VALUES ('up_pop'), ('up_knn'), ('up_als')) m(name), generate_series(0, 40, 4) u(user_id),
         LATERAL personalize.recommend(m.name, u.user_id, 10) r
    UNION ALL
    SELECT 'similar_items', m.name, i.item_id, r.item_id, r.score, r.rank
    FROM (VALUES ('up_knn'), ('up_als')) m(name), generate_series(0, 30, 5) i(item_id),
         LATERAL personalize.similar_items(m.name, i.item_id, 5) r)
  SELECT count(*) INTO mismatches
  FROM public.upgrade_served b FULL JOIN now_served a USING (fn, name, user_id, rank)
  WHERE a.item_id IS DISTINCT FROM b.item_id OR abs(a.score - b.score) > 1e-6 * greatest(1, abs(b.score))
     OR a.score IS NULL OR b.score IS NULL;
  IF mismatches > 0 THEN
    RAISE EXCEPTION 'serving after the upgrade differs in % rows', mismatches;
  END IF;
  RAISE NOTICE 'upgrade kept % catalog tables, % stored models and % served rows', (SELECT count(*) FROM public.upgrade_rows),
    (SELECT count(*) FROM public.upgrade_images), (SELECT count(*) FROM public.upgrade_served);
END $$;

-- What 0.2.0 adds to data written by 0.1.0: models belong to the extension's
-- owner; an exempt role written by name into a 0.1.0 policy is found by OID.
DO $$
DECLARE n bigint; total bigint;
BEGIN
  IF EXISTS (SELECT FROM personalize.models
             WHERE owner <> (SELECT extowner FROM pg_extension WHERE extname = 'pg_personalize')::regrole) THEN
    RAISE EXCEPTION 'a 0.1.0 model did not get the extension''s owner as its owner';
  END IF;
  IF (SELECT qual FROM pg_policies WHERE tablename = 'exempt_clicks' AND policyname = 'personalize_consent') ~ 'upgrade_exempt' THEN
    RAISE EXCEPTION 'the updated policy still names the exempt role';
  END IF;
  SELECT count(*) INTO total FROM public.exempt_clicks;
  GRANT SELECT ON personalize.consents TO upgrade_exempt;   -- every reader of a protected table needs it
  ALTER ROLE upgrade_exempt RENAME TO upgrade_exempt_renamed;
  SET LOCAL ROLE upgrade_exempt_renamed;
  SELECT count(*) INTO n FROM public.exempt_clicks;
  RESET ROLE;
  ALTER ROLE upgrade_exempt_renamed RENAME TO upgrade_exempt;
  IF n <> total THEN
    RAISE EXCEPTION 'after the update and a rename, the exempt role sees % of % rows', n, total;
  END IF;
  RAISE NOTICE 'and gave % models to the extension''s owner; an exempt role survived a rename', (SELECT count(*) FROM personalize.models);
END $$;
