-- pg_personalize 0.1.0 -> 0.2.0
-- complain if script is sourced in psql rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_personalize UPDATE TO '0.2.0'" to load this file. \quit

-- Every change to an SQL object between the releases appears here, in the
-- order it was made; test/check_upgrade.sh checks that the result equals a
-- fresh install of 0.2.0, object by object.
