"""Invoke entry point: assembles the operator's task modules (deploy/tasks) and the developer's
(devtools/tasks.py, never shipped); no logic lives here.

Run `invoke --list` for the tasks and `invoke TASK --help` for one task's options. Every task
becomes an OperatorTask (deploy/tasks/__init__.py), so flags, short flags, numbers and errors
behave the same in every module.
"""

from invoke import Collection

from deploy.tasks import OperatorTask, backup, operations, pitr, release, standby
from devtools import tasks as dev

ns = Collection()
for module in (dev, release, backup, operations, pitr, standby):
    for task in module.TASKS:
        ns.add_task(OperatorTask.adopt(task))
