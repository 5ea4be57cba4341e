"""The sandbox's inventory says what it means: explicit standby ports, never `standby_ports = []`."""

from __future__ import annotations

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
