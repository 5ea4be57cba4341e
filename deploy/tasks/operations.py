"""Invoke tasks: operations (see docs/)."""

TASKS: list = []
