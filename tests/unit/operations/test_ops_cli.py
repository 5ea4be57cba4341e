"""The ops CLI's failure reporting: one redacted line for the operator, a bug's traceback kept."""

from __future__ import annotations

import pytest

from deploy.ops import cli

URL = "postgres://clicknback:pw-93ac@127.0.0.1:5432/clicknback"


@pytest.fixture
def deploy_root(tmp_path, monkeypatch):
    (tmp_path / "shared" / "logs").mkdir(parents=True)
    (tmp_path / "shared" / ".env").write_text(f"DATABASE_URL={URL}\n")
    monkeypatch.setenv("ENV_FILE", str(tmp_path / "shared" / ".env"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv(cli.TRACEBACK_VARIABLE, raising=False)
    return tmp_path


def _raise(error: Exception) -> Exception:
    try:
        raise error
    except Exception as raised:  # noqa: BLE001 - a real traceback to report
        return raised


def test_an_operational_error_is_one_line_naming_the_command(deploy_root, capsys):
    status = cli.report_failure("migrate", _raise(ConnectionRefusedError(111, "Connect call failed")))
    assert status == 1
    assert (
        capsys.readouterr().err == "clicknback-ops migrate: connection failed: ConnectionRefusedError: "
        "[Errno 111] Connect call failed\n"
    )


def test_a_bug_is_one_line_and_its_traceback_goes_to_the_log_without_the_password(deploy_root, capsys):
    status = cli.report_failure("stats", _raise(RuntimeError(f"cannot parse {URL}")))
    err = capsys.readouterr().err
    log = deploy_root / "shared" / "logs" / cli.ERROR_LOG_NAME
    assert status == 1 and err.count("\n") == 1
    assert err.startswith("clicknback-ops stats: unexpected error RuntimeError (a bug; traceback in ")
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "cannot parse ***" in text
    assert "pw-93ac" not in text + err


def test_the_traceback_variable_shows_it_on_the_terminal_redacted(deploy_root, capsys, monkeypatch):
    monkeypatch.setenv(cli.TRACEBACK_VARIABLE, "1")
    cli.report_failure("stats", _raise(KeyError("pw-93ac")))
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "KeyError: '***'" in err and "pw-93ac" not in err
    assert not (deploy_root / "shared" / "logs" / cli.ERROR_LOG_NAME).exists()


def test_main_turns_an_unreadable_env_file_into_a_configuration_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ENV_FILE", str(tmp_path / "missing.env"))
    assert cli.main(["stats", "--only-logs"]) == 2
    assert capsys.readouterr().err.strip().startswith("configuration error: ENV_FILE")


def test_a_refused_login_is_an_operational_error():
    import asyncpg

    cause = cli.operational_cause(asyncpg.InvalidPasswordError('password authentication failed for user "x"'))
    assert cause == 'database error: InvalidPasswordError: password authentication failed for user "x"'
    assert cli.operational_cause(ValueError("a bug")) is None


def test_runnable_names_the_form_that_works_on_a_host():
    from deploy.ops.settings import runnable

    assert runnable("rebuild-cap-totals --dry-run", "/srv/clicknback/shared/.env") == (
        "cd /srv/clicknback/current && ENV_FILE=/srv/clicknback/shared/.env "
        "./.venv/bin/python -m deploy.ops.cli rebuild-cap-totals --dry-run"
    )
    # No deploy-root layout to go by: the module form, said to run from the release directory.
    assert runnable("check-wallets", "") == "python -m deploy.ops.cli check-wallets (from the release directory)"
    assert runnable("check-wallets", "/etc/odd.env").startswith("python -m deploy.ops.cli check-wallets")


def test_no_help_text_names_an_executable_the_hosts_do_not_have():
    parser = cli.build_parser()
    assert "python -m deploy.ops.cli" in parser.description  # how to run `clicknback-ops` on a host
    subparsers = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    for name, sub in subparsers.choices.items():
        texts = [sub.description or ""] + [action.help or "" for action in sub._actions]
        assert not any("clicknback-ops " in text for text in texts), name


def test_secret_values_include_pgpassword_and_the_percent_decoded_password(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("DATABASE_URL=postgres://clicknback:p%40ss-93ac@127.0.0.1:5432/clicknback\n")
    monkeypatch.setenv("ENV_FILE", str(tmp_path / ".env"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("PGPASSWORD", "pg-pass-77e1")
    secrets = cli.secret_values()
    assert {"p%40ss-93ac", "p@ss-93ac", "pg-pass-77e1"} <= set(secrets)
    assert cli.redact("libpq: password p@ss-93ac / pg-pass-77e1", secrets) == "libpq: password *** / ***"


def test_a_backup_command_failure_is_one_redacted_line(tmp_path, monkeypatch, capsys):
    import argparse

    from deploy.ops import backup

    (tmp_path / ".env").write_text(
        "DATABASE_URL=postgres://clicknback:p%40ss-93ac@127.0.0.1:5432/clicknback\n"
        "S3_BUCKET=backups\nS3_ACCESS_KEY_ID=key-id-5f2a\nS3_SECRET_ACCESS_KEY=secret-key-93ac\n"
    )
    monkeypatch.setenv("ENV_FILE", str(tmp_path / ".env"))
    for name in ("DATABASE_URL", "S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)

    def failing(args, settings, store):
        raise RuntimeError("pg_dump: password p@ss-93ac refused; S3 said secret-key-93ac is wrong")

    status = backup._command(failing)(argparse.Namespace(command="backup"))
    assert status == 1
    assert capsys.readouterr().err == "backup: RuntimeError: pg_dump: password *** refused; S3 said *** is wrong\n"
