"""Helpers shared by the backup integration and e2e tests."""

from __future__ import annotations

from devtools.local_postgres import LocalPostgres


def table_digests(cluster: LocalPostgres, database: str) -> dict[str, str]:
    """Every public table's full contents, as one md5 per table (row order independent)."""
    tables = cluster.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", database).split()
    return {
        table: cluster.psql(
            f"SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) "
            f'FROM "{table}" t',
            database,
        )
        for table in tables
    }


def scratch_databases(cluster: LocalPostgres) -> list[str]:
    return cluster.psql("SELECT datname FROM pg_database WHERE datname LIKE '%\\_verify\\_%'").split()
