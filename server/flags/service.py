"""Feature flags: resolution (API.md §4.8: scoped row -> global row -> default true, fail-open) and the
admin API of §3.8 (upsert, delete, evaluate, list), each change audited in its own transaction."""

from __future__ import annotations

import re
from typing import Any

from loguru import logger
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from server.audit import service as audit
from server.errors import ApiError, violation
from server.flags.models import FeatureFlag
from server.http import page
from server.pagination import page_of
from server.wallets.balances import NOW


async def resolve(
    key: str, scope_type: str = "global", scope_id: str | None = None, tx: BaseDBAsyncClient | None = None
) -> tuple[bool, str]:
    """(enabled, source) where source is "scoped", "global" or "default". Flags are never cached."""
    wanted = Q(scope_type="global")
    if scope_type != "global":
        wanted |= Q(scope_type=scope_type, scope_id=scope_id)
    rows = await FeatureFlag.filter(wanted, key=key).using_db(tx).values("scope_type", "enabled")
    return _pick(scope_type, {row["scope_type"]: row["enabled"] for row in rows})


def _pick(scope_type: str, found: dict[str, bool]) -> tuple[bool, str]:
    """The resolution rule over the rows found for one scope: `found` maps a scope type to its row's
    enabled."""
    if scope_type != "global" and scope_type in found:
        return found[scope_type], "scoped"
    if "global" in found:
        return found["global"], "global"
    return True, "default"


async def resolve_many(
    key: str, scopes: dict[str, set[str]], tx: BaseDBAsyncClient | None = None
) -> dict[tuple[str, str], bool]:
    """resolve() for many scopes in one query: `scopes` maps "user"/"merchant" to scope ids, and the
    answer maps each (scope_type, scope_id) to enabled, by the same rule."""
    wanted = Q(scope_type="global")
    for scope_type, ids in scopes.items():
        if ids:
            wanted |= Q(scope_type=scope_type, scope_id__in=sorted(ids))
    rows = await FeatureFlag.filter(wanted, key=key).using_db(tx).values("scope_type", "scope_id", "enabled")
    globals_ = {row["scope_type"]: row["enabled"] for row in rows if row["scope_type"] == "global"}
    scoped = {(row["scope_type"], str(row["scope_id"])): row["enabled"] for row in rows if row["scope_id"]}
    answers = {}
    for scope_type, ids in scopes.items():
        for scope_id in ids:
            found = dict(globals_)
            if (scope_type, scope_id) in scoped:
                found[scope_type] = scoped[(scope_type, scope_id)]
            answers[(scope_type, scope_id)] = _pick(scope_type, found)[0]
    return answers


# -- the admin API (API.md §3.8) -------------------------------------------------------------

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
SCOPE_TYPES = ("global", "merchant", "user")
FLAG_FIELDS = ("id", "key", "enabled", "scope_type", "scope_id", "description", "created_at", "updated_at")
UPSERT_ATTEMPTS = 3


def key_violation(key: str | None) -> dict[str, str] | None:
    if key is None or not 1 <= len(key) <= 100:
        return violation("key", "Key must be 1 to 100 characters long.")
    if not KEY_PATTERN.match(key):
        return violation("key", "Key must match ^[a-z][a-z0-9_]*$.")
    return None


def global_scope_violation(scope_type: str | None, scope_id: str | None) -> dict[str, str] | None:
    if scope_type == "global" and scope_id is not None:
        return violation("scope_id", "scope_id must be null when scope_type is 'global'.")
    return None


def require_scope_id(scope_type: str, scope_id: str | None) -> None:
    if scope_type != "global" and scope_id is None:
        raise ApiError(
            422,
            "FEATURE_FLAG_SCOPE_ID_REQUIRED",
            f"scope_id is required when scope_type is '{scope_type}'.",
            {"scope_type": scope_type},
        )


def flag_out(row) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "key": row["key"],
        "enabled": row["enabled"],
        "scope_type": row["scope_type"],
        "scope_id": str(row["scope_id"]) if row["scope_id"] is not None else None,
        "description": row["description"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _same_scope(tx: BaseDBAsyncClient, key: str, scope_type: str, scope_id: str | None) -> QuerySet[FeatureFlag]:
    return FeatureFlag.filter(key=key, scope_type=scope_type, scope_id=scope_id).using_db(tx)


async def upsert(
    admin_id: str, key: str, scope_type: str, scope_id: str | None, enabled: bool, description: str | None
) -> dict[str, Any]:
    for _ in range(UPSERT_ATTEMPTS):
        try:
            async with in_transaction() as tx:
                same = _same_scope(tx, key, scope_type, scope_id)
                existing = await same.select_for_update().first()
                previous = existing.enabled if existing is not None else None
                if existing is None:
                    flag = await FeatureFlag.create(
                        using_db=tx,
                        key=key,
                        enabled=enabled,
                        scope_type=scope_type,
                        scope_id=scope_id,
                        description=description,
                    )
                else:
                    kept = {} if description is None else {"description": description}
                    await same.update(enabled=enabled, updated_at=NOW, **kept)
                    flag = await same.get()
                await audit.record(
                    tx,
                    actor_type="admin",
                    actor_id=admin_id,
                    action="FEATURE_FLAG_SET",
                    resource_type="feature_flag",
                    resource_id=flag.id,
                    details={
                        "key": key,
                        "scope_type": scope_type,
                        "scope_id": scope_id,
                        "enabled": enabled,
                        "previous_enabled": previous,
                    },
                )
            return flag_out({name: getattr(flag, name) for name in FLAG_FIELDS})
        except IntegrityError as error:
            # uq_feature_flags_key_scope: the row appeared between our read and our insert; retry
            # to update it and learn its previous value.
            if getattr(error.__cause__, "constraint_name", None) != "uq_feature_flags_key_scope":
                raise
            logger.bind(event="flags.upsert_retry", key=key, scope_type=scope_type).info("flag upsert raced; retrying")
    raise RuntimeError("feature flag upsert kept racing")


async def delete(admin_id: str, key: str, scope_type: str, scope_id: str | None) -> None:
    async with in_transaction() as tx:
        same = _same_scope(tx, key, scope_type, scope_id)
        flag = await same.select_for_update().first()
        if flag is None:
            raise ApiError(
                404,
                "FEATURE_FLAG_NOT_FOUND",
                f"Feature flag '{key}' not found for scope '{scope_type}'.",
                {"key": key, "scope_type": scope_type, "scope_id": scope_id},
            )
        await same.delete()
        await audit.record(
            tx,
            actor_type="admin",
            actor_id=admin_id,
            action="FEATURE_FLAG_DELETED",
            resource_type="feature_flag",
            resource_id=flag.id,
            details={"key": key, "scope_type": scope_type, "scope_id": scope_id, "enabled": flag.enabled},
        )


async def evaluate(key: str, scope_type: str, scope_id: str | None) -> dict[str, Any]:
    enabled, source = await resolve(key, scope_type, scope_id)
    return {"key": key, "enabled": enabled, "source": source}


async def list_page(
    offset: int, limit: int, key: str | None, scope_type: str | None, scope_id: str | None
) -> dict[str, Any]:
    given = {name: value for name, value in (("key", key), ("scope_type", scope_type), ("scope_id", scope_id))}
    rows, total = await page_of(
        FeatureFlag.filter(**{name: value for name, value in given.items() if value is not None}),
        fields=FLAG_FIELDS,
        order_by=("-created_at", "-id"),
        offset=offset,
        limit=limit,
    )
    return page([flag_out(row) for row in rows], offset, limit, total)
