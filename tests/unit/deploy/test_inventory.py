"""Inventory parsing: defaults, overrides, and errors that name the bad key."""

from __future__ import annotations

import pytest

from deploy.inventory import DEFAULT_INVENTORY, InventoryError, load_inventory, parse_inventory

MINIMAL = '[environments.prod]\n[[environments.prod.hosts]]\naddress = "10.0.0.5"\n'


def _with_env_line(line: str) -> str:
    """MINIMAL with `line` in its environment's table."""
    return MINIMAL.replace("[environments.prod]", f"[environments.prod]\n{line}")


def test_minimal_inventory_gets_the_documented_defaults():
    host = parse_inventory(MINIMAL).environment("prod").hosts[0]
    assert (host.name, host.ssh_port, host.ssh_user, host.deploy_root) == (
        "10.0.0.5",
        22,
        "clicknback",
        "/srv/clicknback",
    )
    assert host.instance_ports == (8001, 8002) and host.keep_releases == 5 and host.health_timeout == 30
    assert host.instance_listen == "unix" and host.instance_socket(8002) == "/srv/clicknback/run/app-8002.sock"
    assert host.ready_url_for(8002) == "http+unix://%2Fsrv%2Fclicknback%2Frun%2Fapp-8002.sock/health/ready"
    assert host.live_url_for(8001) == "http+unix://%2Fsrv%2Fclicknback%2Frun%2Fapp-8001.sock/health/live"
    assert host.standby_ports == (8101, 8102) and host.partner_port(8102) == 8002
    assert host.partner_port(8001) == 8101 and host.all_ports == (8001, 8002, 8101, 8102)


def test_instances_over_tcp_keep_the_bind_address_and_port_urls():
    host = (
        parse_inventory(MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\ninstance_listen = "tcp"'))
        .environment("prod")
        .hosts[0]
    )
    assert host.ready_url_for(8002) == "http://127.0.0.1:8002/health/ready"
    assert host.live_url_for(8001) == "http://127.0.0.1:8001/health/live"
    assert host.instance_label(8001) == "127.0.0.1:8001"
    older = parse_inventory(
        MINIMAL.replace(
            'address = "10.0.0.5"',
            'address = "10.0.0.5"\ninstance_listen = "tcp"\nready_url = "http://{bind_address}:{port}/health/ready"',
        )
    )
    assert older.environment("prod").hosts[0].ready_url_for(8101) == "http://127.0.0.1:8101/health/ready"


def test_host_overrides_environment_overrides_defaults():
    inventory = parse_inventory(
        'default_environment = "staging"\n[defaults]\nssh_port = 2222\nhealth_timeout = 10\n'
        '[environments.staging]\nssh_port = 2200\ndeploy_root = "/opt/cnb/"\n'
        '[[environments.staging.hosts]]\nname = "a"\naddress = "10.0.0.1"\n'
        '[[environments.staging.hosts]]\nname = "b"\naddress = "10.0.0.2"\nssh_port = 22\n'
    )
    env = inventory.environment(None)
    assert env.name == "staging"
    assert [h.ssh_port for h in env.hosts] == [2200, 22]
    assert env.hosts[0].deploy_root == "/opt/cnb" and env.hosts[0].health_timeout == 10
    assert env.allow_drill is False


@pytest.mark.parametrize(
    "text,message",
    [
        (
            MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\nssh_prot = 22'),
            "environments.prod.hosts[0].ssh_prot: unknown key",
        ),
        (
            MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\nssh_port = "22"'),
            "environments.prod.hosts[0].ssh_port: expected a port number",
        ),
        (
            MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\ninstance_ports = [8001, 8001]'),
            "environments.prod.hosts[0].instance_ports: expected distinct port numbers",
        ),
        (
            MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\ndeploy_root = "srv"'),
            "environments.prod.hosts[0].deploy_root: expected an absolute path",
        ),
        (
            MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\nbackup_schedule = "monthly"'),
            "environments.prod.hosts[0].backup_schedule: expected one of weekly, daily, hourly",
        ),
        (
            MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\nready_url = "http://x/health"'),
            "ready_url: expected a URL template containing {instance} or {port}",
        ),
        (
            MINIMAL.replace('address = "10.0.0.5"', f'address = "10.0.0.5"\ndeploy_root = "/{"d" * 90}"'),
            "deploy_root: too long for the instances' Unix sockets",
        ),
        (
            MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\ninstance_listen = "ipc"'),
            "environments.prod.hosts[0].instance_listen: expected one of unix, tcp",
        ),
        (MINIMAL.replace('address = "10.0.0.5"', 'name = "x"'), "environments.prod.hosts[0].address: required"),
        (
            MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\nstandby_ports = [8002, 9000]'),
            "environments.prod.hosts[0].standby_ports: expected one port per instance port",
        ),
        (
            MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\nstandby_ports = [9000]'),
            "standby_ports: expected one port per instance port",
        ),
        ("[defaults]\nkeep_releses = 3\n" + MINIMAL, "defaults.keep_releses: unknown key"),
        ("[defaults]\nkeep_releases = 0\n" + MINIMAL, "keep_releases: expected a positive integer"),
        ("[environments.prod]\nhosts = []\n", "environments.prod.hosts: expected at least one"),
        ("", "environments: at least one environment is required"),
        ("[environments.prod\n", "not valid TOML"),
        (MINIMAL + '[environments.prod.s3]\nbucket = "x"\n', "environments.prod.s3: the inventory no longer holds S3"),
        ('[defaults.s3]\nregion = "x"\n' + MINIMAL, "defaults.s3: the inventory no longer holds S3 settings"),
        (_with_env_line("allow_drill = 1"), "environments.prod.allow_drill: expected true or false"),
        (
            MINIMAL + '[environments.prod.database]\ndrill_runs_on = "there"\n',
            "environments.prod.database.drill_runs_on: expected one of host, local",
        ),
        (
            MINIMAL + '[environments.prod.database]\nkill = ""\n',
            "environments.prod.database.kill: expected a command",
        ),
        (MINIMAL + "[environments.prod.database]\nkill = 1\n", "environments.prod.database.kill: expected a string"),
        ('[defaults]\ndrill_database_stop = "x"\n' + MINIMAL, "defaults.drill_database_stop: unknown key"),
        (
            'default_environment = "stagin"\n' + MINIMAL + MINIMAL.replace("prod", "staging"),
            "default_environment: no environment named 'stagin' (known: prod, staging)",
        ),
        (MINIMAL + MINIMAL.replace("prod", "staging"), "default_environment: required when there is no environment"),
        (MINIMAL + '[[environments.prod.hosts]]\naddress = "10.0.0.5"\n', "duplicate host name '10.0.0.5'"),
    ],
)
def test_bad_inventory_names_the_key(text, message):
    with pytest.raises(InventoryError, match=None) as error:
        parse_inventory(text, "inv.toml")
    assert message in str(error.value)
    assert str(error.value).startswith("inv.toml")


def test_unknown_environment_lists_the_known_ones():
    with pytest.raises(InventoryError, match=r"no environment named 'qa' \(known: prod\)"):
        parse_inventory(MINIMAL).environment("qa")


def test_inventory_file_comes_from_the_flag_then_the_environment_variable(tmp_path, monkeypatch):
    flagged, from_env = tmp_path / "a.toml", tmp_path / "b.toml"
    flagged.write_text(MINIMAL)
    from_env.write_text(MINIMAL.replace("prod", "stage"))
    monkeypatch.setenv("CLICKNBACK_INVENTORY", str(from_env))
    assert list(load_inventory(str(flagged)).environments) == ["prod"]
    assert list(load_inventory().environments) == ["stage"]
    with pytest.raises(InventoryError, match="cannot read inventory"):
        load_inventory(str(tmp_path / "missing.toml"))


def test_the_shipped_inventory_is_valid(monkeypatch):
    monkeypatch.delenv("CLICKNBACK_INVENTORY", raising=False)
    inventory = load_inventory()
    assert inventory.path == DEFAULT_INVENTORY
    assert {"production", "staging"} <= set(inventory.environments)


def test_default_environment_without_the_key_is_production_or_the_only_one():
    assert parse_inventory(MINIMAL).default_environment == "prod"
    both = MINIMAL.replace("prod", "production") + MINIMAL.replace("prod", "staging")
    assert parse_inventory(both).environment(None).name == "production"


def test_s3_error_is_one_line_pointing_at_the_env_file():
    with pytest.raises(InventoryError) as error:
        parse_inventory(MINIMAL.replace("[environments.prod]", '[environments.prod]\ns3 = { bucket = "b" }'))
    assert "\n" not in str(error.value) and "shared/.env" in str(error.value)


def _env(name: str, address: str = "10.0.0.5", allow: str = "") -> object:
    text = MINIMAL.replace("prod", name).replace("10.0.0.5", address)
    if allow:
        text = text.replace(f"[environments.{name}]", f"[environments.{name}]\nallow_drill = {allow}")
    return parse_inventory(text).environment(name)


@pytest.mark.parametrize(
    "name,address,allow,allowed",
    [
        ("staging", "10.0.0.5", "", False),  # a remote environment must opt in
        ("staging", "10.0.0.5", "true", True),
        ("staging", "10.0.0.5", "false", False),
        ("sandbox", "127.0.0.2", "", True),  # every host is this machine
        ("stagin", "10.0.0.5", "", False),  # a typo never makes the drill possible
        ("production", "10.0.0.5", "true", False),  # production-like names are refused whatever the flag
        ("prod", "127.0.0.2", "", False),
        ("prod-eu", "10.0.0.5", "true", False),
        ("live_2", "10.0.0.5", "true", False),
        ("Production", "10.0.0.5", "true", False),
        ("products", "10.0.0.5", "true", True),  # a whole word only: not a substring match
    ],
)
def test_the_drill_runs_only_where_the_inventory_allows_it(name, address, allow, allowed):
    refusal = _env(name, address, allow).drill_refusal()
    assert (refusal is None) is allowed, refusal
    if name.lower().startswith(("prod", "live")) and not name.startswith("products"):
        assert "never runs on production" in refusal


def test_the_shipped_inventory_allows_the_drill_on_staging_only(monkeypatch):
    monkeypatch.delenv("CLICKNBACK_INVENTORY", raising=False)
    inventory = load_inventory()
    assert inventory.environment("staging").drill_refusal() is None
    assert "never runs on production" in inventory.environment("production").drill_refusal()


def test_the_drill_database_commands_default_to_systemd_on_the_database_host():
    db = _env("staging", allow="true").database
    assert db.kill == "sudo -n systemctl kill --signal=SIGKILL postgresql@15-main"
    assert db.start == "sudo -n systemctl start postgresql@15-main"
    assert db.drill_runs_on == "host"


def test_the_database_table_names_the_drills_commands():
    text = MINIMAL + '[environments.prod.database]\nkill = "kill-db"\nstart = "start-db"\ndrill_runs_on = "local"\n'
    db = parse_inventory(text).environment("prod").database
    assert (db.kill, db.start, db.drill_runs_on) == ("kill-db", "start-db", "local")


def test_old_drill_keys_are_refused_with_the_lines_to_write_in_the_database_table():
    text = _with_env_line('drill_database_stop = "kill-db"\ndrill_database_runs_on = "first_host"')
    with pytest.raises(InventoryError) as error:
        parse_inventory(text, "inv.toml")
    assert str(error.value) == (
        "inv.toml: environments.prod: drill_database_stop and drill_database_runs_on moved into "
        '[environments.prod.database] (ADR 0046): delete them and write there: kill = "kill-db"; drill_runs_on = "host"'
    )


def test_an_old_pitr_table_is_refused_with_each_key_renamed():
    text = _with_env_line(
        'pitr = { os_user = "pg", pg_port = 6432, dir = "/srv/pitr", pg_host = "/run/pg", bogus = 1 }'
    )
    with pytest.raises(InventoryError) as error:
        parse_inventory(text, "inv.toml")
    assert str(error.value) == (
        "inv.toml: environments.prod: the pitr table moved into [environments.prod.database] (ADR 0046): delete it "
        'and write there: account = "pg"; port = 6432; pitr_dir = "/srv/pitr"; socket_dir = "/run/pg"; '
        "(pitr.bogus: no such key; drop it)"
    )
    with pytest.raises(
        InventoryError, match=r"the pitr table moved .*write there: nothing \(the pitr table is empty\)"
    ):
        parse_inventory(_with_env_line('pitr = "postgres"'), "inv.toml")
