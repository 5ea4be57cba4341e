"""Pure builders of every remote shell command and file the deploy tooling sends to a host, one module
per concern; each builder sits next to the parser of its own output.

Nothing here opens a connection or reads the clock: each function maps its arguments to a string,
so every command is unit-tested with golden strings and `--dry-run` prints exactly these. The
remote shell is POSIX sh (the deploy user's login shell runs it with -c). `from deploy import
commands as cmd` reaches every builder; a module may import the concern it needs directly.
"""

from __future__ import annotations

from deploy.commands.cron import ARCHIVE_LOGS_UTC_TIME as ARCHIVE_LOGS_UTC_TIME
from deploy.commands.cron import BACKUP_UTC_TIMES as BACKUP_UTC_TIMES
from deploy.commands.cron import CRON_EVERY_QUARTER_HOUR as CRON_EVERY_QUARTER_HOUR
from deploy.commands.cron import CRONTAB_LOCK as CRONTAB_LOCK
from deploy.commands.cron import MAINTENANCE_UTC_TIME as MAINTENANCE_UTC_TIME
from deploy.commands.cron import UtcGuard as UtcGuard
from deploy.commands.cron import crontab_block as crontab_block
from deploy.commands.cron import crontab_install_command as crontab_install_command
from deploy.commands.cron import crontab_marker as crontab_marker
from deploy.commands.cron import utc_time_guard as utc_time_guard
from deploy.commands.health import FAST_POLL_INTERVAL as FAST_POLL_INTERVAL
from deploy.commands.health import FAST_POLL_SECONDS as FAST_POLL_SECONDS
from deploy.commands.health import READINESS_POLLER as READINESS_POLLER
from deploy.commands.health import curl_target as curl_target
from deploy.commands.health import health_poll_command as health_poll_command
from deploy.commands.health import instance_output_tail_command as instance_output_tail_command
from deploy.commands.health import probe_command as probe_command
from deploy.commands.health import readiness_poll_command as readiness_poll_command
from deploy.commands.health import tail_logs_command as tail_logs_command
from deploy.commands.layout import Layout as Layout
from deploy.commands.layout import install_env_file_command as install_env_file_command
from deploy.commands.layout import layout_command as layout_command
from deploy.commands.layout import program_name as program_name
from deploy.commands.layout import q as q
from deploy.commands.layout import writable_root_command as writable_root_command
from deploy.commands.layout import write_file_command as write_file_command
from deploy.commands.lock import LOCK_HELD_EXIT as LOCK_HELD_EXIT
from deploy.commands.lock import ledger_append_command as ledger_append_command
from deploy.commands.lock import lock_acquire_command as lock_acquire_command
from deploy.commands.lock import lock_release_command as lock_release_command
from deploy.commands.lock import lock_status_command as lock_status_command
from deploy.commands.nginx import NGINX as NGINX
from deploy.commands.nginx import NGINX_VERIFY_SECONDS as NGINX_VERIFY_SECONDS
from deploy.commands.nginx import UPSTREAM_KEEPALIVE as UPSTREAM_KEEPALIVE
from deploy.commands.nginx import nginx_apply_command as nginx_apply_command
from deploy.commands.nginx import nginx_conf as nginx_conf
from deploy.commands.nginx import nginx_new_workers_command as nginx_new_workers_command
from deploy.commands.nginx import nginx_ready_url as nginx_ready_url
from deploy.commands.nginx import nginx_reload_command as nginx_reload_command
from deploy.commands.nginx import nginx_upstream_conf as nginx_upstream_conf
from deploy.commands.nginx import parse_live_ports as parse_live_ports
from deploy.commands.nginx import point_slots_command as point_slots_command
from deploy.commands.nginx import slot_socket as slot_socket
from deploy.commands.nginx import upstream_server as upstream_server
from deploy.commands.ops import OPS_CLI as OPS_CLI
from deploy.commands.ops import database_ahead_of as database_ahead_of
from deploy.commands.ops import migrate_command as migrate_command
from deploy.commands.ops import migrate_status_command as migrate_status_command
from deploy.commands.ops import migrate_to_command as migrate_to_command
from deploy.commands.ops import migration_number as migration_number
from deploy.commands.ops import ops_command as ops_command
from deploy.commands.releases import RELEASE_ID_PATTERN as RELEASE_ID_PATTERN
from deploy.commands.releases import TAG_PATTERN as TAG_PATTERN
from deploy.commands.releases import build_venv_command as build_venv_command
from deploy.commands.releases import check_tag as check_tag
from deploy.commands.releases import ensure_venv_command as ensure_venv_command
from deploy.commands.releases import extract_release_command as extract_release_command
from deploy.commands.releases import link_missing_slots_command as link_missing_slots_command
from deploy.commands.releases import point_release_slots_command as point_release_slots_command
from deploy.commands.releases import prune_command as prune_command
from deploy.commands.releases import prune_venvs_command as prune_venvs_command
from deploy.commands.releases import release_id as release_id
from deploy.commands.releases import release_metadata as release_metadata
from deploy.commands.releases import releases_to_prune as releases_to_prune
from deploy.commands.releases import switch_current_command as switch_current_command
from deploy.commands.releases import unused_venvs as unused_venvs
from deploy.commands.releases import upload_path as upload_path
from deploy.commands.releases import venv_links_command as venv_links_command
from deploy.commands.services import start_live_instances_command as start_live_instances_command
from deploy.commands.services import start_services_command as start_services_command
from deploy.commands.services import stop_services_command as stop_services_command
from deploy.commands.state import HostState as HostState
from deploy.commands.state import parse_state as parse_state
from deploy.commands.state import read_state_command as read_state_command
from deploy.commands.supervisor import DRAIN_WAIT_SECONDS as DRAIN_WAIT_SECONDS
from deploy.commands.supervisor import SUPERVISORCTL as SUPERVISORCTL
from deploy.commands.supervisor import SUPERVISORD as SUPERVISORD
from deploy.commands.supervisor import drain_in_background_command as drain_in_background_command
from deploy.commands.supervisor import instance_listen_args as instance_listen_args
from deploy.commands.supervisor import instance_pid_command as instance_pid_command
from deploy.commands.supervisor import remove_stale_programs_command as remove_stale_programs_command
from deploy.commands.supervisor import start_instances_command as start_instances_command
from deploy.commands.supervisor import stop_instances_command as stop_instances_command
from deploy.commands.supervisor import supervisor_ensure_running_command as supervisor_ensure_running_command
from deploy.commands.supervisor import supervisor_multicall as supervisor_multicall
from deploy.commands.supervisor import supervisor_program_conf as supervisor_program_conf
from deploy.commands.supervisor import supervisor_rpc_command as supervisor_rpc_command
from deploy.commands.supervisor import supervisorctl_command as supervisorctl_command
from deploy.commands.supervisor import supervisord_conf as supervisord_conf
from deploy.commands.supervisor import xmlrpc_request as xmlrpc_request
from deploy.commands.switch import commit_switch_command as commit_switch_command
from deploy.commands.switch import failed_ports as failed_ports
from deploy.commands.switch import flip_command as flip_command
from deploy.commands.switch import kill_prepare_command as kill_prepare_command
from deploy.commands.switch import phase_durations as phase_durations
from deploy.commands.switch import phase_marker as phase_marker
from deploy.commands.switch import prepare_switch_command as prepare_switch_command
from deploy.commands.switch import undo_prepare_command as undo_prepare_command
from deploy.commands.switch import unflip_command as unflip_command
from deploy.commands.system import AUTOGROUP_KNOB as AUTOGROUP_KNOB
from deploy.commands.system import SYSCTL_FILE as SYSCTL_FILE
from deploy.commands.system import sysctl_command as sysctl_command
from deploy.commands.system import system_setup_commands as system_setup_commands
from deploy.commands.templates import TEMPLATES_DIR as TEMPLATES_DIR
from deploy.commands.templates import render as render
