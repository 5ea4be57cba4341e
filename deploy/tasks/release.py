"""Invoke tasks: release (see docs/)."""

TASKS: list = []
