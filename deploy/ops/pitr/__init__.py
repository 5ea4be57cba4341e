"""Point-in-time recovery: continuous WAL archiving and base backups through barman-cloud (ADR 0040).

barman.py builds every command and setting (pure, unit-tested); wal.py is the archive_command and
restore_command (system python3, stdlib and cryptography only, because PostgreSQL's own account
runs it); runner.py runs base backups, retention and restores; lag.py reads the archive's lag.
"""
