"""Invoke entry point: assembles the task modules of deploy/tasks; no logic lives here.

Run `invoke --list` for the tasks and `invoke --help TASK` for one task's options.
"""

from invoke import Collection

from deploy.tasks import backup, dev, operations, release

ns = Collection()
for module in (dev, release, backup, operations):
    for task in module.TASKS:
        ns.add_task(task)
