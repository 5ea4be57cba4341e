"""Invoke tasks: backup (see docs/)."""

TASKS: list = []
