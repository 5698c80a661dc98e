-- calibration: Platt scaling or isotonic regression of a logistic model, fitted on
-- held-out rows, stored as a new version (store_version) and applied by personalize.predict.

CREATE FUNCTION personalize.calibration_fit(model personalize.model, source text, method text DEFAULT 'platt')
RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.calibration_fit(personalize.model, text, text) IS
	'the model with a calibration (platt or isotonic) fitted on the rows of a source';

CREATE FUNCTION personalize.calibrate(model_name text, source text, method text DEFAULT 'platt')
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- No pinned search_path: the source resolves as the caller's; every name here is qualified.
AS $$
DECLARE
	current record;
	started timestamptz;
	calibrated personalize.model;
BEGIN
	IF model_name IS NULL OR source IS NULL OR method IS NULL THEN
		RAISE EXCEPTION 'model_name, source and method must not be NULL' USING ERRCODE = '22004';
	END IF;
	SELECT m.version, m.algorithm, m.options INTO current
	FROM personalize.models m WHERE m.name = model_name AND m.active;
	IF NOT FOUND THEN
		IF EXISTS (SELECT FROM personalize.models m WHERE m.name = model_name) THEN
			RAISE EXCEPTION 'model "%" has no active version', model_name USING ERRCODE = '55000',
				HINT = 'Activate one with personalize.activate().';
		END IF;
		RAISE EXCEPTION 'model "%" does not exist', model_name USING ERRCODE = '42704';
	END IF;
	-- before the fit (store_version and the row policy check again)
	IF NOT personalize.may_change_model(model_name) THEN
		RAISE EXCEPTION 'must be owner of model "%"', model_name USING ERRCODE = '42501',
			HINT = 'Ask the model''s owner or a member of personalize_admin.';
	END IF;
	IF current.algorithm <> 'logistic' THEN
		RAISE EXCEPTION 'model "%" is % % model, not a logistic model', model_name,
			CASE WHEN current.algorithm IN ('itemknn', 'als', 'uplift') THEN 'an' ELSE 'a' END, current.algorithm
			USING ERRCODE = '0A000';
	END IF;
	started := pg_catalog.clock_timestamp();
	calibrated := personalize.calibration_fit(personalize.model_export(model_name, current.version), source, method);
	RETURN personalize.store_version(model_name, calibrated,
		pg_catalog.jsonb_concat(current.options - 'calibration' - 'calibration_source' - 'calibrated_version',
		                        pg_catalog.jsonb_build_object('calibration', method, 'calibration_source', source,
		                                                      'calibrated_version', current.version)),
		pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - started), true);
END
$$;
COMMENT ON FUNCTION personalize.calibrate(text, text, text) IS
	'calibrate the active version of a logistic model on held-out rows; stores and activates a new version';
