"""The sandbox's inventory says what it means: explicit standby ports, never `standby_ports = []`."""

from __future__ import annotations

import socket
import tomllib

from deploy.inventory import load_inventory
from devtools.sandbox import ENVIRONMENT, Sandbox

# Never created (inventory_text touches no file); short, as the instances' socket paths must be.
BASE = "/tmp/cnb-unit-sandbox"


def test_default_standby_ports_are_written_out(tmp_path):
    sandbox = Sandbox(BASE)
    text = sandbox.inventory_text()
    assert tomllib.loads(text)["defaults"]["standby_ports"] == [8101, 8102]
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    host = load_inventory(str(path)).environment(ENVIRONMENT).hosts[0]
    assert host.instance_ports == (8001, 8002) and host.standby_ports == (8101, 8102)


def test_chosen_standby_ports_are_kept():
    sandbox = Sandbox(BASE, instance_ports=(9001, 9002), standby_ports=(9501, 9502))
    assert tomllib.loads(sandbox.inventory_text())["defaults"]["standby_ports"] == [9501, 9502]


def test_the_drill_stops_and_starts_the_sandbox_cluster_on_this_machine(tmp_path):
    path = tmp_path / "inventory.toml"
    path.write_text(Sandbox(BASE).inventory_text())
    environment = load_inventory(str(path)).environment(ENVIRONMENT)
    assert environment.database.drill_runs_on == "local"
    for command, action in ((environment.database.kill, "stop"), (environment.database.start, "start")):
        assert command.endswith(f"-m devtools.sandbox database {action} {BASE}"), command


def test_nginx_gets_a_port_free_on_every_host_address_not_a_fixed_one():
    sandbox = Sandbox(BASE)
    port = sandbox.nginx_port
    assert port > 0 and tomllib.loads(sandbox.inventory_text())["defaults"]["nginx_port"] == port
    for address in sandbox.addresses:  # free there now: nothing else holds it
        with socket.socket() as probe:
            probe.bind((address, port))
    assert Sandbox(BASE, nginx_port=18090).nginx_port == 18090


def test_a_sandbox_keeps_its_nginx_port_across_ups(tmp_path):
    (tmp_path / "nginx-port").write_text("18123")  # what its first `up` chose
    assert Sandbox(tmp_path).nginx_port == 18123


def test_a_database_pair_sandbox_names_a_cluster_on_each_host_and_points_the_app_at_the_first(tmp_path):
    sandbox = Sandbox(tmp_path / "sb", database_pair=True)
    path = tmp_path / "inventory.toml"
    path.write_text(sandbox.inventory_text())
    environment = load_inventory(str(path)).environment(ENVIRONMENT)
    port = sandbox.pair().port
    for host in environment.hosts:
        db = environment.database.for_host(host.name, host.address)
        assert db.data_dir == f"{tmp_path}/sb/db/{host.name}/data" and db.run_as == "" and db.port == port
        assert f"listen_addresses={host.address} -c port={port}" in db.start
    assert f"DATABASE_URL=postgres://clicknback@127.0.0.2:{port}/clicknback\n" in sandbox.env_text()
    assert Sandbox(tmp_path / "sb").database_pair  # remembered by the next `sandbox up`
