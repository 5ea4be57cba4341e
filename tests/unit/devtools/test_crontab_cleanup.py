"""Which crontab lines a sandbox's teardown removes: its own blocks and the exact test lines, nothing else."""

from __future__ import annotations

from devtools.local_sshd import is_under, strip_crontab

MINE = "/var/tmp/cnb-e2e-abc/sandbox/roots"
FOREIGN = "# a line of the user's own, outside our blocks"


def block(root: str) -> str:
    return (
        f"# BEGIN clicknback {root}\n# Managed by `invoke provision`\n"
        f"@reboot supervisord -c {root}/supervisor/supervisord.conf\n# END clicknback {root}\n"
    )


def test_is_under_goes_by_path_components():
    assert is_under(f"{MINE}/127.0.0.2", MINE)
    assert is_under(MINE, MINE + "/")
    assert not is_under("/var/tmp/cnb-e2e-abc/sandbox/roots2/127.0.0.2", MINE)
    assert not is_under("/srv/clicknback", MINE)


def test_strip_crontab_drops_only_its_own_blocks_and_the_named_lines():
    text = (
        "MAILTO=ops@example.test\n"
        + block(f"{MINE}/127.0.0.2")
        + FOREIGN
        + "\n"
        + block("/srv/clicknback")
        + block(f"{MINE}/127.0.0.3")
        + FOREIGN
        + "\n"
        + "0 5 * * * /home/u/own-job\n"
    )
    cleaned = strip_crontab(text, lambda root: is_under(root, MINE), [FOREIGN])
    assert cleaned == "MAILTO=ops@example.test\n" + block("/srv/clicknback") + "0 5 * * * /home/u/own-job\n"


def test_strip_crontab_keeps_everything_when_nothing_matches():
    text = block("/srv/clicknback") + "# " + FOREIGN + "\n"  # not exactly the line: kept
    assert strip_crontab(text, lambda root: is_under(root, MINE), [FOREIGN]) == text


def test_a_block_without_its_end_marker_is_dropped_to_the_end():
    # An interrupted write can leave a truncated block; everything after BEGIN is that block's.
    text = "own line\n" + f"# BEGIN clicknback {MINE}/127.0.0.2\n@reboot x\n"
    assert strip_crontab(text, lambda root: is_under(root, MINE)) == "own line\n"
