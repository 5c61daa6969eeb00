-- hotswap_pg 1.0. Requires shared_preload_libraries = 'hotswap_pg' and hotswap.container_dir.
\echo Use "CREATE EXTENSION hotswap_pg" to load this file. \quit

-- Which container function each SQL function declared with hotswap.define() calls.
CREATE TABLE hotswap.functions (
  fn regprocedure PRIMARY KEY,
  container text NOT NULL,
  entry text NOT NULL
);
GRANT USAGE ON SCHEMA hotswap TO PUBLIC;
GRANT SELECT ON hotswap.functions TO PUBLIC;  -- the dispatcher reads it as the calling role

-- Every published swap, with the role that asked (refusals are in the server log only:
-- their transaction ends in an ERROR).
CREATE TABLE hotswap.swap_history (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  role name NOT NULL,
  container text NOT NULL,
  version bigint NOT NULL,
  file text NOT NULL,
  sha256 text NOT NULL,
  build text NOT NULL,
  preflight_ms double precision
);
GRANT SELECT ON hotswap.swap_history TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('hotswap.functions', '');
SELECT pg_catalog.pg_extension_config_dump('hotswap.swap_history', '');
SELECT pg_catalog.pg_extension_config_dump('hotswap.swap_history_id_seq', '');

-- Publishes `file` (under hotswap.container_dir; a relative name is taken there) as the next
-- version of `container`. Every backend that runs it moves at its own next transition point.
-- Waits up to wait_ms for the other backends; counts are of other backends running it.
CREATE FUNCTION hotswap.swap(container text, file text, wait_ms integer DEFAULT 0,
                             OUT version bigint, OUT moved integer, OUT refused integer, OUT pending integer)
  RETURNS record AS 'MODULE_PATHNAME', 'hotswap_swap' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION hotswap.swap(text, text, integer) FROM PUBLIC;

CREATE FUNCTION hotswap.backend_versions(OUT pid integer, OUT container text, OUT version bigint,
                                         OUT refused bigint, OUT since timestamptz)
  RETURNS SETOF record AS 'MODULE_PATHNAME', 'hotswap_backend_versions' LANGUAGE C VOLATILE;
CREATE FUNCTION hotswap.container_versions(OUT container text, OUT version bigint, OUT file text,
                                           OUT sha256 text, OUT build text, OUT since timestamptz)
  RETURNS SETOF record AS 'MODULE_PATHNAME', 'hotswap_container_versions' LANGUAGE C VOLATILE;

-- Which version each backend runs (refused: the newest version whose startup failed there).
CREATE VIEW hotswap.versions AS SELECT * FROM hotswap.backend_versions();
CREATE VIEW hotswap.containers AS SELECT * FROM hotswap.container_versions();

-- Declares an SQL function bound to the dispatcher, once: a swap never re-creates it.
--   SELECT hotswap.define('pricing', 'price(numeric)', 'numeric');
--   SELECT hotswap.define('pricing', 'app.net_price(numeric, int)', 'numeric', entry => 'net', volatility => 'stable');
CREATE FUNCTION hotswap.define(container text, signature text, returns text, entry text DEFAULT NULL,
                               volatility text DEFAULT 'volatile', strict boolean DEFAULT true)
  RETURNS regprocedure LANGUAGE plpgsql AS $$
DECLARE
  fn regprocedure;
BEGIN
  IF lower(volatility) NOT IN ('volatile', 'stable', 'immutable') THEN
    RAISE EXCEPTION 'hotswap.define: volatility must be volatile, stable or immutable, not %', volatility
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  EXECUTE format('CREATE FUNCTION %s RETURNS %s LANGUAGE C %s %s PARALLEL UNSAFE AS %L, %L',
                 signature, returns, volatility,
                 CASE WHEN strict THEN 'STRICT' ELSE 'CALLED ON NULL INPUT' END,
                 'MODULE_PATHNAME', 'hotswap_dispatch');
  fn := signature::regprocedure;
  INSERT INTO hotswap.functions(fn, container, entry)
    VALUES (fn, container, coalesce(entry, (SELECT proname FROM pg_proc WHERE oid = fn)));
  RETURN fn;
END
$$;
REVOKE ALL ON FUNCTION hotswap.define(text, text, text, text, text, boolean) FROM PUBLIC;
