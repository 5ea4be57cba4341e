"""Inventory parsing: defaults, overrides, and errors that name the bad key."""

from __future__ import annotations

import pytest

from deploy.inventory import DEFAULT_INVENTORY, InventoryError, load_inventory, parse_inventory

MINIMAL = '[environments.prod]\n[[environments.prod.hosts]]\naddress = "10.0.0.5"\n'


def test_minimal_inventory_gets_the_documented_defaults():
    host = parse_inventory(MINIMAL).environment("prod").hosts[0]
    assert (host.name, host.ssh_port, host.ssh_user, host.deploy_root) == ("10.0.0.5", 22, "clicknback", "/srv/clicknback")
    assert host.instance_ports == (8001, 8002) and host.keep_releases == 5 and host.health_timeout == 30
    assert host.instance_listen == "unix" and host.instance_socket(8002) == "/srv/clicknback/run/app-8002.sock"
    assert host.ready_url_for(8002) == "http+unix://%2Fsrv%2Fclicknback%2Frun%2Fapp-8002.sock/health/ready"
    assert host.live_url_for(8001) == "http+unix://%2Fsrv%2Fclicknback%2Frun%2Fapp-8001.sock/health/live"
    assert host.standby_ports == (8101, 8102) and host.partner_port(8102) == 8002
    assert host.partner_port(8001) == 8101 and host.all_ports == (8001, 8002, 8101, 8102)


def test_instances_over_tcp_keep_the_bind_address_and_port_urls():
    host = parse_inventory(MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\ninstance_listen = "tcp"'))\
        .environment("prod").hosts[0]
    assert host.ready_url_for(8002) == "http://127.0.0.1:8002/health/ready"
    assert host.live_url_for(8001) == "http://127.0.0.1:8001/health/live"
    assert host.instance_label(8001) == "127.0.0.1:8001"
    older = parse_inventory(MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\ninstance_listen = "tcp"\n'
                                            'ready_url = "http://{bind_address}:{port}/health/ready"'))
    assert older.environment("prod").hosts[0].ready_url_for(8101) == "http://127.0.0.1:8101/health/ready"


def test_host_overrides_environment_overrides_defaults():
    inventory = parse_inventory(
        'default_environment = "staging"\n[defaults]\nssh_port = 2222\nhealth_timeout = 10\n'
        '[environments.staging]\nssh_port = 2200\ndeploy_root = "/opt/cnb/"\n'
        '[environments.staging.s3]\nbucket = "b"\n'
        '[[environments.staging.hosts]]\nname = "a"\naddress = "10.0.0.1"\n'
        '[[environments.staging.hosts]]\nname = "b"\naddress = "10.0.0.2"\nssh_port = 22\n'
    )
    env = inventory.environment(None)
    assert env.name == "staging"
    assert [h.ssh_port for h in env.hosts] == [2200, 22]
    assert env.hosts[0].deploy_root == "/opt/cnb" and env.hosts[0].health_timeout == 10
    assert env.s3.bucket == "b" and env.s3.backup_prefix == "backups/"


@pytest.mark.parametrize("text,message", [
    (MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\nssh_prot = 22'),
     "environments.prod.hosts[0].ssh_prot: unknown key"),
    (MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\nssh_port = "22"'),
     "environments.prod.hosts[0].ssh_port: expected a port number"),
    (MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\ninstance_ports = [8001, 8001]'),
     "environments.prod.hosts[0].instance_ports: expected distinct port numbers"),
    (MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\ndeploy_root = "srv"'),
     "environments.prod.hosts[0].deploy_root: expected an absolute path"),
    (MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\nbackup_schedule = "monthly"'),
     "environments.prod.hosts[0].backup_schedule: expected one of weekly, daily, hourly"),
    (MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\nready_url = "http://x/health"'),
     "ready_url: expected a URL template containing {instance} or {port}"),
    (MINIMAL.replace('address = "10.0.0.5"', f'address = "10.0.0.5"\ndeploy_root = "/{"d" * 90}"'),
     'deploy_root: too long for the instances\' Unix sockets'),
    (MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\ninstance_listen = "ipc"'),
     "environments.prod.hosts[0].instance_listen: expected one of unix, tcp"),
    (MINIMAL.replace('address = "10.0.0.5"', 'name = "x"'), "environments.prod.hosts[0].address: required"),
    (MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\nstandby_ports = [8002, 9000]'),
     "environments.prod.hosts[0].standby_ports: expected one port per instance port"),
    (MINIMAL.replace('address = "10.0.0.5"', 'address = "10.0.0.5"\nstandby_ports = [9000]'),
     "standby_ports: expected one port per instance port"),
    ("[defaults]\nkeep_releses = 3\n" + MINIMAL, "defaults.keep_releses: unknown key"),
    ("[defaults]\nkeep_releases = 0\n" + MINIMAL, "keep_releases: expected a positive integer"),
    ('[environments.prod]\nhosts = []\n', "environments.prod.hosts: expected at least one"),
    ("", "environments: at least one environment is required"),
    ("[environments.prod\n", "not valid TOML"),
    (MINIMAL + '[environments.prod.s3]\nbuckett = "x"\n', "environments.prod.s3.buckett: unknown key"),
    (MINIMAL + '[[environments.prod.hosts]]\naddress = "10.0.0.5"\n', "duplicate host name '10.0.0.5'"),
])
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
