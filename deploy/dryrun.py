"""How a dry run shows a command that would change a host: one line by default, the exact command
with --verbose.

The exact commands embed whole files, XML-RPC request bodies and the readiness poller's source, so
printed as they are a deploy's plan runs to hundreds of lines. The default line says the step in
words and then the command with those bulky parts folded to a short name; --verbose prints the
command byte for byte, as it would run.
"""

from __future__ import annotations

import re

KEY_LIMIT = 220  # characters of the folded command on the default line

_PHASE = r'echo "@phase \w+ \$\(date \+%s\.%N\)"'
_PHASE_AFTER = re.compile(rf"\s*&&\s*{_PHASE}")  # `step && marker`
_PHASE_BEFORE = re.compile(rf"{_PHASE}\s*(?:&&|;)?\s*")  # `marker && step` (the first)
# One sh single-quoted word: '...' pieces joined by the '"'"' escape of a quote inside it.
_QUOTED = r"'(?:[^']|'\"'\"')*'"
# write_file_command: printf the content to PATH.tmp, chmod, rename over PATH.
_WRITE = re.compile(rf"printf '%s' (?:{_QUOTED}|\S+) > (\S+)\.tmp && chmod (\d+) \S+ && mv -f \S+ ([^\s;]+)", re.DOTALL)
# An XML-RPC request body, however deeply it is quoted.
_XMLRPC = re.compile(r"<\?xml.*?</methodCall>\s*", re.DOTALL)
_METHOD = re.compile(r"<methodName>([\w.]+)</methodName>")
_STRING = re.compile(r"<string>([^<]*)</string>")
# A Python program passed with -c (the readiness poller), multi-line.
_SCRIPT = re.compile(rf"-c ({_QUOTED})", re.DOTALL)
# curl posting a folded XML-RPC body to supervisor's socket, and the config flags every nginx and
# supervisorctl call repeats.
_RPC_CALL = re.compile(r"curl [^|;&]*?--data-binary \S*?<XML-RPC ([^>]*)>\S* http://localhost/RPC2")
# prepare_switch_command's bookkeeping: its shell's pid recorded for an interrupted switch, and the
# guard that the supervisor programs run their slot links.
_PID_WRAP = re.compile(r"^echo \$\$ > (\S+) && \{ (.*); \}; status=\$\?; rm -f \1; exit \$status$", re.DOTALL)
_SLOTS_GUARD = re.compile(
    r"\{ grep -qF command=\S+ \S+(?: && grep -qF command=\S+ \S+)* \|\| \{ echo '[^']*'; false; \}; \}"
)
_CONFIG_FLAGS = re.compile(r"(\S*/)?(nginx|supervisorctl|supervisord)((?: -[pce] [^\s;]+)+)")


def _xmlrpc_name(match: re.Match[str]) -> str:
    strings = _STRING.findall(match.group(0))  # a multicall names its methods as strings
    methods = [m for m in _METHOD.findall(match.group(0)) if m != "system.multicall"]
    methods += [s for s in strings if s.startswith("supervisor.")]
    strings = [s for s in strings if not s.startswith("supervisor.")]
    return f"<XML-RPC {','.join(methods)}({','.join(dict.fromkeys(strings))})>"


def _script_name(match: re.Match[str]) -> str:
    text = match.group(1)
    if "\n" not in text:
        return match.group(0)
    first = next((line.strip(" '\"") for line in text.splitlines() if line.strip(" '\"")), "")
    summary = re.split(r"[,:(]", first.replace("'\"'\"'", "'"))[0].strip()[:60]
    return f"-c <script: {summary}>"


def fold(command: str) -> str:
    """The command on one line, with file contents, XML-RPC calls, embedded scripts and config flags
    replaced by a short name of what they are (`write PATH`, `supervisor supervisor.startProcess(app-8101)`,
    `nginx -s reload`)."""
    text = _PHASE_BEFORE.sub("", _PHASE_AFTER.sub("", command))
    text = _PID_WRAP.sub(r"\2", text.strip())
    text = _SLOTS_GUARD.sub("<check the programs run their slots>", text)
    text = _WRITE.sub(lambda m: f"write {m.group(3)} (mode {m.group(2)})", text)
    text = _XMLRPC.sub(_xmlrpc_name, text)
    text = _SCRIPT.sub(_script_name, text)
    text = _RPC_CALL.sub(r"supervisor \1", text)
    text = _CONFIG_FLAGS.sub(r"\2", text)
    return " ".join(text.split())


def key_command(command: str, limit: int = KEY_LIMIT) -> str:
    """The folded command, cut at `limit` characters on a word boundary."""
    folded = fold(command)
    if len(folded) <= limit:
        return folded
    return folded[:limit].rsplit(" ", 1)[0] + " …"


def render(command: str, what: str | None, verbose: bool, key: str | None = None) -> list[str]:
    """The dry-run messages for one command: `would <what>: <key command>`; with `verbose`, the
    words and then `would run: <the exact command>` (which may span lines: it embeds files)."""
    if verbose:
        return ([f"would {what}"] if what else []) + [f"would run: {command}"]
    return [f"would {what or 'run'}: {key or key_command(command)}"]
