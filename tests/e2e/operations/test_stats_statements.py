"""`stats` on a database with pg_stat_statements: the slowest statements never carry a password."""

import asyncio
import json

import asyncpg
import pytest

from deploy.ops.stats import database_stats
from devtools.local_postgres import LocalPostgres

pytestmark = pytest.mark.e2e
NEW_PASSWORD = "rotated-pw-3e9a71"


@pytest.fixture
def cluster(tmp_path):
    cluster = LocalPostgres(tmp_path / "pg")
    cluster.start("-c shared_preload_libraries=pg_stat_statements")
    cluster.create_database("clicknback")
    cluster.psql("CREATE EXTENSION pg_stat_statements", "clicknback")
    yield cluster
    cluster.destroy()


def test_a_password_set_in_the_app_database_is_masked_in_the_slowest_statements(cluster):
    async def rotate() -> None:  # as an operator rotating the app's password from psql "$DATABASE_URL"
        conn = await asyncpg.connect(cluster.dsn("clicknback"))
        try:
            await conn.execute(f"ALTER ROLE postgres PASSWORD '{NEW_PASSWORD}'")
        finally:
            await conn.close()

    asyncio.run(rotate())
    report = asyncio.run(database_stats(cluster.dsn("clicknback")))
    queries = [statement["query"] for statement in report["slowest_statements"]]
    assert "ALTER ROLE postgres PASSWORD '***'" in queries
    assert NEW_PASSWORD not in json.dumps(report)
