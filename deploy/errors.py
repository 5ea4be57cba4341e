"""The deploy tooling's own failures: an operation stopped, and the message says why."""

from __future__ import annotations


class DeployError(RuntimeError):
    """The operation stopped; the message says why and what state the hosts are in."""


class LockHeldError(DeployError):
    """Another operation holds the deploy lock."""
