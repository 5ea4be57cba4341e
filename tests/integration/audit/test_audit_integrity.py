"""The audit row commits with its change or not at all, and nobody can rewrite the log (API.md §4.9)."""

import uuid

import asyncpg
import pytest

from server.audit import service as audit
from server.db import parse_database_url
from tests.integration.merchants.factory import days, insert_merchant, insert_offer


@pytest.fixture
def failing_audit(monkeypatch):
    """Every audit insert breaks ck_audit_actor_type, inside the change's own transaction."""
    real_record = audit.record

    async def record_with_bad_actor(conn, **kwargs):
        await real_record(conn, **{**kwargs, "actor_type": "robot"})

    monkeypatch.setattr(audit, "record", record_with_bad_actor)


async def merchant_created(client, conn, admin):
    response = await client.post(
        "/api/v1/merchants", token=admin.token, json={"name": "Ghost", "default_cashback_percentage": 5}
    )
    return response, await conn.fetchval("SELECT count(*) FROM merchants WHERE name = 'Ghost'") == 0


async def merchant_deactivated(client, conn, admin):
    merchant_id = await insert_merchant(conn)
    response = await client.patch(
        f"/api/v1/merchants/{merchant_id}/status", token=admin.token, json={"status": "inactive"}
    )
    return response, await conn.fetchval("SELECT active FROM merchants WHERE id = $1", merchant_id) is True


async def offer_created(client, conn, admin):
    merchant_id = await insert_merchant(conn)
    response = await client.post(
        "/api/v1/offers",
        token=admin.token,
        json={
            "merchant_id": merchant_id,
            "cashback_type": "percent",
            "cashback_value": 5,
            "start_date": str(days(0)),
            "end_date": str(days(9)),
            "monthly_cap": 10,
        },
    )
    return response, await conn.fetchval("SELECT count(*) FROM offers") == 0


async def offer_deactivated(client, conn, admin):
    offer_id = await insert_offer(conn, await insert_merchant(conn))
    response = await client.patch(f"/api/v1/offers/{offer_id}/status", token=admin.token, json={"status": "inactive"})
    return response, await conn.fetchval("SELECT active FROM offers WHERE id = $1", offer_id) is True


async def flag_set(client, conn, admin):
    response = await client.put("/api/v1/feature-flags/ghost_flag", token=admin.token, json={"enabled": False})
    return response, await conn.fetchval("SELECT count(*) FROM feature_flags") == 0


async def flag_deleted(client, conn, admin):
    await conn.execute("INSERT INTO feature_flags (key, enabled) VALUES ('ghost_flag', true)")
    response = await client.delete("/api/v1/feature-flags/ghost_flag", token=admin.token)
    return response, await conn.fetchval("SELECT count(*) FROM feature_flags") == 1


@pytest.mark.parametrize(
    "change", [merchant_created, merchant_deactivated, offer_created, offer_deactivated, flag_set, flag_deleted]
)
async def test_a_failing_audit_insert_rolls_the_change_back(client, conn, admin, failing_audit, change):
    response, change_is_gone = await change(client, conn, admin)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INTERNAL_SERVER_ERROR"
    assert change_is_gone
    assert await conn.fetchval("SELECT count(*) FROM audit_logs") == 0


async def test_the_bad_actor_really_breaks_the_check(client):
    from tortoise.exceptions import IntegrityError
    from tortoise.transactions import in_transaction

    with pytest.raises(IntegrityError) as raised:
        async with in_transaction() as tx:
            await audit.record(
                tx,
                actor_type="robot",
                actor_id=str(uuid.uuid4()),
                action="MERCHANT_CREATED",
                resource_type="merchant",
                resource_id=str(uuid.uuid4()),
                details={},
            )
    assert isinstance(raised.value.__cause__, asyncpg.CheckViolationError)
    assert raised.value.__cause__.constraint_name == "ck_audit_actor_type"


async def one_audit_row(conn) -> str:
    return str(
        await conn.fetchval(
            "INSERT INTO audit_logs (actor_type, actor_id, action, resource_type, resource_id) "
            "VALUES ('admin', $1, 'MERCHANT_CREATED', 'merchant', $2) RETURNING id",
            uuid.uuid4(),
            uuid.uuid4(),
        )
    )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_logs SET outcome = 'failure'",
        "DELETE FROM audit_logs",
        "TRUNCATE audit_logs",
    ],
)
async def test_nobody_rewrites_the_log_not_even_a_superuser(conn, statement):
    row_id = await one_audit_row(conn)
    assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="audit_logs is append-only"):
        await conn.execute(statement)
    assert await conn.fetchval("SELECT outcome FROM audit_logs WHERE id = $1", row_id) == "success"


async def test_an_application_role_has_no_update_or_delete_privilege(conn, database_url):
    """A non-superuser role like the deployed one: granted the tables, then revoked as the migration does."""
    role = f"cnb_app_{uuid.uuid4().hex[:10]}"
    row_id = await one_audit_row(conn)
    await conn.execute(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER')
    try:
        await conn.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO "{role}"')
        await conn.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
        await conn.execute(f'REVOKE UPDATE, DELETE, TRUNCATE ON audit_logs FROM "{role}"')
        app = await asyncpg.connect(**{**parse_database_url(database_url), "user": role, "password": None})
        try:
            # The role still writes the log and the business tables ...
            await app.execute("UPDATE merchants SET active = active")
            await one_audit_row(app)
            # ... but cannot change or remove a line of it: refused by privilege, before any trigger runs.
            for statement in (
                "UPDATE audit_logs SET outcome = 'failure' WHERE id = $1",
                "DELETE FROM audit_logs WHERE id = $1",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for table audit_logs"):
                    await app.execute(statement, row_id)
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for table audit_logs"):
                await app.execute("TRUNCATE audit_logs")
        finally:
            await app.close()
    finally:
        await conn.execute(f'DROP OWNED BY "{role}"')
        await conn.execute(f'DROP ROLE "{role}"')
    assert await conn.fetchval("SELECT count(*) FROM audit_logs") == 2


async def test_the_migration_revoked_the_privileges_of_its_own_role(conn):
    """The owner that ran the migration kept INSERT and SELECT only on audit_logs."""
    owner = await conn.fetchval("SELECT tableowner FROM pg_tables WHERE tablename = 'audit_logs'")
    granted = {
        row["privilege_type"]
        for row in await conn.fetch(
            "SELECT privilege_type FROM information_schema.role_table_grants "
            "WHERE table_name = 'audit_logs' AND grantee = $1",
            owner,
        )
    }
    assert {"INSERT", "SELECT"} <= granted
    assert not granted & {"UPDATE", "DELETE", "TRUNCATE"}
