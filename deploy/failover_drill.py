"""`invoke drill --failover`: the primary SIGKILLed under purchase ingestion, `failover`, and what it cost.

A drill user of its own (registered through the API, like any customer) records purchases through
the first host's nginx at a bounded rate while the primary's postmaster is SIGKILLed and the
failover runs. It reports the RTO (from the kill to the first purchase sent after it and acknowledged
through nginx), the purchases acknowledged with 201 and missing afterwards, counted against
the user's own list as the API returns it, and the RPO (the span of acknowledged writes lost).
"""

from __future__ import annotations

import http.client
import json
import secrets
import threading
import time
from dataclasses import dataclass, field

from deploy.commands import standby as sc
from deploy.errors import DeployError
from deploy.primary import database_host
from deploy.session import Session
from deploy.standby import database, failover, find_standby, reachable, role

PAGE = 100  # the API's largest page


class FailoverDrillFailed(DeployError):
    pass


def api(base: tuple[str, int], method: str, path: str, body: dict | None = None, token: str = "") -> tuple[int, dict]:
    """One request on a connection of its own: a request in flight when a database dies must not
    leave a half-read keep-alive connection to the next one."""
    connection = http.client.HTTPConnection(*base, timeout=10)
    try:
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw) if raw else {}
        except ValueError:
            return response.status, {}
    finally:
        connection.close()


@dataclass
class Ingestion:
    """Paced purchase recording, bounded by a request budget and a deadline; every 201 is kept."""

    base: tuple[str, int]
    token: str
    user_id: str
    merchant_id: str
    prefix: str
    threads: int = 4
    per_thread_rate: float = 20.0
    max_requests: int = 20000
    deadline_s: float = 300.0
    # (sent, acknowledged, purchase id), monotonic times: a request sent before the kill may be
    # acknowledged after it, and must not count as writes working again.
    acknowledged: list[tuple[float, float, str]] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _take(self) -> int | None:
        with self._lock:
            if self.sent >= self.max_requests:
                return None
            self.sent += 1
            return self.sent

    def _work(self, deadline: float) -> None:
        while time.monotonic() < deadline and not self._stop.wait(1.0 / self.per_thread_rate):
            number = self._take()
            if number is None:
                return
            purchase = {
                "external_id": f"{self.prefix}-{number}",
                "user_id": self.user_id,
                "merchant_id": self.merchant_id,
                "amount": "10.00",
                "currency": "EUR",
            }
            sent = time.monotonic()
            try:
                status, body = api(self.base, "POST", "/api/v1/purchases", purchase, self.token)
                outcome = str(status)
            except OSError as error:
                status, body, outcome = 0, {}, type(error).__name__
            with self._lock:
                if status == 201:
                    self.acknowledged.append((sent, time.monotonic(), body["id"]))
                else:
                    self.refused[outcome] = self.refused.get(outcome, 0) + 1

    def start(self) -> Ingestion:
        deadline = time.monotonic() + self.deadline_s
        self._workers = [
            threading.Thread(target=self._work, args=(deadline,), daemon=True) for _ in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=15)

    def acknowledged_after(self, moment: float) -> float | None:
        """When the first purchase sent after `moment` was acknowledged."""
        with self._lock:
            return min((acked for sent, acked, _ in self.acknowledged if sent > moment), default=None)

    def wait_for(self, condition, timeout: float, what: str) -> None:  # noqa: ANN001 - a zero-argument predicate
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise FailoverDrillFailed(f"{what} within {timeout:.0f}s (refused so far: {self.refused})")
            time.sleep(0.05)


def drill_customer(base: tuple[str, int], stamp: str) -> tuple[str, str, str]:
    """(token, user id, merchant id): a user registered for the drill, and a merchant with an active offer."""
    email, password = f"failover-drill-{stamp}@example.com", "Dr1ll!" + secrets.token_urlsafe(12)
    status, body = api(base, "POST", "/api/v1/users", {"email": email, "password": password})
    if status != 201:
        raise FailoverDrillFailed(f"could not register the drill user through nginx: {status} {body}")
    status, body = api(base, "POST", "/api/v1/auth/login", {"email": email, "password": password})
    if status != 200:
        raise FailoverDrillFailed(f"could not log the drill user in: {status} {body}")
    token = body["access_token"]
    _, me = api(base, "GET", "/api/v1/users/me", token=token)
    _, offers = api(base, "GET", f"/api/v1/offers/active?limit={PAGE}", token=token)
    if not offers.get("data"):
        raise FailoverDrillFailed("no active offer: the drill records purchases against one (create one first)")
    return token, me["id"], offers["data"][0]["merchant_id"]


def listed_ids(base: tuple[str, int], token: str, expected: int) -> set[str]:
    """The drill user's purchases as the API lists them (bounded: a page more than expected)."""
    ids: set[str] = set()
    for offset in range(0, expected + 2 * PAGE, PAGE):
        status, page = api(base, "GET", f"/api/v1/users/me/purchases?limit={PAGE}&offset={offset}", token=token)
        if status != 200:
            raise FailoverDrillFailed(f"the purchase list answered {status} after the failover: {page}")
        ids.update(p["id"] for p in page["data"])
        if offset + PAGE >= page["pagination"]["total"]:
            break
    return ids


def run_failover_drill(session: Session, warm_up_acks: int = 100, timeout: int = 120) -> dict:
    """Kill the primary under load, fail over, count; returns the measured figures."""
    first = session.remotes[0]
    base = (first.host.address, first.host.nginx_port)
    up = [r for r in session.remotes if reachable(r)]
    primary = database_host(session)
    standby = find_standby(session, primary, up)
    mode = role(primary, database(session, primary))
    if mode.kind != "primary":
        raise FailoverDrillFailed(f"{primary.host.name}'s PostgreSQL is {mode.kind}, not the running primary")
    sync = primary.query(sc.psql(database(session, primary), "SHOW synchronous_standby_names")).stdout.strip()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    token, user_id, merchant_id = drill_customer(base, stamp)
    load = Ingestion(base, token, user_id, merchant_id, f"failover-drill-{stamp}").start()
    try:
        load.wait_for(lambda: len(load.acknowledged) >= warm_up_acks, timeout, "the load made no progress")
        session.say(f"drill: {len(load.acknowledged)} purchases acknowledged; SIGKILL {primary.host.name}'s postmaster")
        primary.run(sc.kill_postmaster_command(database(session, primary)))
        killed_at = time.monotonic()
        detail = failover(session, primary.host.name, standby.host.name)
        load.wait_for(
            lambda: load.acknowledged_after(killed_at) is not None, timeout, "no purchase acknowledged after failover"
        )
        recovered = load.acknowledged_after(killed_at) or killed_at
    finally:
        load.stop()
    acknowledged = [(acked, pid) for _, acked, pid in load.acknowledged]
    present = listed_ids(base, token, len(acknowledged))
    return {
        "failover": detail,
        "synchronous": bool(sync),
        **losses(acknowledged, present, killed_at),
        "rto_s": round(recovered - killed_at, 2),  # the failover command starts at once after the kill
        "requests": load.sent,
        "refused": load.refused,
    }


def losses(acknowledged: list[tuple[float, str]], present: set[str], killed_at: float) -> dict:
    """How many acknowledged purchases are missing, and the RPO: from the first lost write to the last
    write acknowledged before the kill (0 when none is missing)."""
    missing = [t for t, pid in acknowledged if pid not in present]
    before = [t for t, _ in acknowledged if t < killed_at]
    rpo_s = max(before) - min(missing) if missing and before else 0.0
    return {"acknowledged": len(acknowledged), "missing": len(missing), "rpo_s": round(max(rpo_s, 0.0), 2)}


def report_line(figures: dict) -> str:
    mode = "synchronous" if figures["synchronous"] else "asynchronous"
    return (
        f"failover drill ({mode}): {figures['failover']}; RTO {figures['rto_s']:.1f}s (kill to the first purchase sent "
        f"after it and acknowledged through nginx); {figures['acknowledged']} purchases acknowledged, {figures['missing']} "
        f"missing after failover (RPO {figures['rpo_s']:.1f}s of writes); {figures['requests']} requests, refused "
        f"during the outage: {json.dumps(figures['refused'], sort_keys=True)}"
    )
