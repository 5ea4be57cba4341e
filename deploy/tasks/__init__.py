"""Invoke tasks, one module per concern. Each module exports TASKS, the list tasks.py adds.

tasks.py turns every task into an OperatorTask, so the command line behaves the same for all
of them (invoke's defaults differ task by task):

- every parameter is a --flag: invoke makes a parameter without a default positional, and a
  positional parameter swallows the next word, `--help` included. A required one is checked
  instead ("deploy needs --tag"). An explicitly declared positional (`sandbox up`) stays.
- short flags: -d is always --dry-run, -e --env, -i --inventory; -h is left to help (invoke
  would otherwise give it to --host or --history); a task may pin its own letters. A flag whose
  letters are all taken has no short form (never a `-` one).
- numbers (parameters whose default is an int or a float) are checked while parsing, before
  any SSH: "abc", 0 or a negative number is one line and exit 1, not a ValueError traceback.
- the toolkit's expected errors (bad inventory, unreachable host, failed remote command, ...)
  become one line and exit 1, for the tasks of every module.
- a reader that leaves early (`invoke releases | head`) stops the task quietly (exit 141).
"""

from __future__ import annotations

import inspect
import math
import os
import sys
from typing import Any

from invoke import Exit, Task
from invoke.parser import Argument, ParseError

# Forced short flags; no other parameter gets these letters, nor h (help).
SHORT_FLAGS = {"dry_run": "d", "env": "e", "inventory": "i"}
RESERVED_LETTERS = set(SHORT_FLAGS.values()) | {"h"}
# invoke picks a parameter's first free character as its short flag, the dash of `db-start`
# included (shown as `--=STRING`): punctuation is never free, so such a flag gets a letter or none.
NOT_SHORT_FLAGS = RESERVED_LETTERS | {"-", "_"}
HELP_WORDS = ("-h", "--help")


class NumberArgument(Argument):
    """A numeric flag parsed and checked by the parser, so bad input is a ParseError (one line)."""

    def __init__(self, number_kind: type, minimum_exclusive: bool, **kwargs: Any):
        # invoke's help shows a value placeholder for str and int kinds only; a float flag is
        # shown as STRING so it is not mistaken for an on/off switch.
        super().__init__(kind=int if number_kind is int else str, **kwargs)
        self.number_kind, self.minimum_exclusive = number_kind, minimum_exclusive

    def set_value(self, value: Any, cast: bool = True) -> None:
        flag = "--" + (self.name or "").replace("_", "-")
        what = "a whole number" if self.number_kind is int else "a number"
        bound = "above 0" if self.minimum_exclusive else "0 or more"
        try:
            number = self.number_kind(value)
        except (TypeError, ValueError):
            raise ParseError(f"ERROR: {flag} takes {what} {bound}, got {value!r}") from None
        if not math.isfinite(number) or number < 0 or (self.minimum_exclusive and number == 0):
            raise ParseError(f"ERROR: {flag} takes {what} {bound}, got {value!r}")
        self.raw_value, self._value = value, number


class OperatorTask(Task):
    """A task whose flags follow the toolkit's conventions (see the module docstring).

    `zero_ok` names numeric parameters for which 0 makes sense (e.g. a warm-up of 0 seconds).
    `short_flags` pins a task's own letters, so an operator's `-t` keeps its meaning when an
    option is added or removed before it.
    """

    def __init__(
        self, body: Any, zero_ok: tuple[str, ...] = (), short_flags: dict[str, str] | None = None, **kwargs: Any
    ):
        self.short_flags = {**SHORT_FLAGS, **(short_flags or {})}
        self.explicit_positional = list(kwargs.get("positional") or [])
        kwargs["positional"] = self.explicit_positional
        super().__init__(body, **kwargs)
        self.zero_ok = set(zero_ok)
        self.help_texts = dict(self.help)  # invoke consumes self.help when it builds the parser
        parameters = list(self.argspec(body).parameters.values())
        self.required = [
            p.name
            for p in parameters
            if p.default is inspect.Signature.empty and p.name not in self.explicit_positional
        ]
        self.numbers = {
            p.name: type(p.default)
            for p in parameters
            if type(p.default) in (int, float) and p.name not in self.incrementable
        }

    @classmethod
    def adopt(cls, task: Task) -> OperatorTask:
        """The same task (body, help, options) as an OperatorTask, every parameter a --flag.

        A plain Task keeps no record of which positionals were declared and which invoke inferred,
        so a task that needs a positional word must be declared with `@task(klass=OperatorTask, ...)`.
        """
        if isinstance(task, cls):
            return task
        return cls(
            task.body,
            name=task._name,
            aliases=task.aliases,
            positional=[],
            optional=task.optional,
            default=task.is_default,
            auto_shortflags=task.auto_shortflags,
            help=task.help,
            pre=task.pre,
            post=task.post,
            autoprint=task.autoprint,
            iterable=task.iterable,
            incrementable=task.incrementable,
        )

    def arg_opts(self, name: str, default: Any, taken_names: set[str]) -> dict[str, Any]:
        not_free = set(taken_names) | NOT_SHORT_FLAGS | set(self.short_flags.values())
        opts = super().arg_opts(name, default, not_free)
        if name in self.short_flags:
            opts["names"] = [opts["names"][0], self.short_flags[name]]
        return opts

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        arguments = super().get_arguments(ignore_unknown_help)
        for index, argument in enumerate(arguments):
            name = argument.attr_name or argument.name
            if name in self.numbers:
                arguments[index] = NumberArgument(
                    self.numbers[name],
                    minimum_exclusive=name not in self.zero_ok,
                    names=argument.names,
                    default=argument.default,
                    help=argument.help,
                    attr_name=argument.attr_name,
                )
        return arguments

    def usage(self) -> str:
        """The task's help, for `invoke TASK --help` where a positional parameter took the word."""
        lines = [
            f"Usage: invoke {self.name} " + " ".join(f"<{p}>" for p in self.explicit_positional) + " [--options]",
            "",
            inspect.cleandoc(self.__doc__ or ""),
            "",
            "Options:",
        ]
        for name, text in self.help_texts.items():
            flag = f"<{name}>" if name in self.explicit_positional else "--" + name.replace("_", "-")
            lines.append(f"  {flag:<18} {text}")
        return "\n".join(lines)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if any(kwargs.get(name) in HELP_WORDS for name in self.explicit_positional):
            print(self.usage())
            return None
        missing = [name for name in self.required if kwargs.get(name) in (None, "")]
        if missing:
            flags = ", ".join("--" + name.replace("_", "-") for name in missing)
            raise Exit(f"ERROR: {self.name} needs {flags} (see `invoke {self.name} --help`)", code=1)
        try:
            return super().__call__(*args, **kwargs)
        except operator_errors() as error:
            raise Exit(f"ERROR: {error}", code=1) from None
        except BrokenPipeError:
            reader_gone()
            raise Exit(code=READER_GONE_EXIT) from None


# The status of a shell tool stopped by SIGPIPE (128 + 13) when its reader (`| head`) exits early.
READER_GONE_EXIT = 141


def reader_gone() -> None:
    """stdout's reader has exited: stop quietly, as a shell tool does. stdout now points at
    /dev/null, so no later write (the interpreter's own flush at exit included) fails again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def operator_errors() -> tuple[type[BaseException], ...]:
    """The expected failures of the toolkit, the one map for every task: reported as one line
    (`ERROR: ...`, exit 1), never as a traceback. Imported late: these modules import this package."""
    from deploy.errors import DeployError
    from deploy.inventory import InventoryError
    from deploy.ledger import LedgerError
    from deploy.ops.pitr.barman import PitrSettingsError
    from deploy.ssh import ConnectionFailed, HostKeyError, RemoteCommandError
    from deploy.tasks.backup import BackupTaskError

    return (
        DeployError,
        InventoryError,
        HostKeyError,
        ConnectionFailed,
        RemoteCommandError,
        LedgerError,
        BackupTaskError,
        PitrSettingsError,
    )
