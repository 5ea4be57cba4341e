"""The sandbox runs the app as production does after `provision --system`: a role that is not a
superuser, has CREATEDB and owns the database, so the documented permission paths can happen."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from devtools.sandbox import DATABASE
from tests.e2e.operations.conftest import _env_values

pytestmark = pytest.mark.e2e


def test_the_app_role_is_no_superuser_but_owns_its_database_and_can_create_databases(deployed):
    role = urlsplit(_env_values(deployed.env_file.read_text())["DATABASE_URL"]).username
    psql = deployed.postgres.psql
    assert role and role != "postgres"
    assert psql(f"SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = '{role}'") == "f|t|f"
    assert psql(f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{DATABASE}'") == role
    # The deploy's migrations ran as that role: it owns the schema it built.
    assert psql("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'", DATABASE) == role
