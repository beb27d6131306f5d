"""Who is running an interaction: a token naming this process, and a check of whether its owner still lives.

`MemoryStore.open` marks "running" interactions as interrupted only when the process that started them is
gone, so a second process (or a second store in the same process) opening the same database never
interrupts runs that are still alive. The token carries the process start time, so a reused pid does not
pass for the dead process that had it before.
"""

from __future__ import annotations

import os
import socket
from functools import cache


def _process_start_ticks(pid: int) -> str | None:
    """The start time of `pid` in clock ticks since boot (Linux /proc), or None where it cannot be read or the
    process is a zombie (killed, not yet reaped by its parent)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after its closing one.
    fields = text[text.rfind(")") + 2 :].split()
    if len(fields) <= 19 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def current_owner() -> str:
    """This process's owner token: `host:pid:start` (looked up again in a forked child, whose pid differs)."""
    return _owner_of(os.getpid())


@cache
def _owner_of(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{_process_start_ticks(pid) or '?'}"


def owner_is_alive(owner: str | None) -> bool:
    """Whether the process named by `owner` may still be running.

    Owners on another host cannot be checked from here and count as alive; an unreadable token counts as dead.
    """
    if owner is None:
        return False
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if not pid_text.isdigit():
        return False
    if host != socket.gethostname():
        return True
    pid = int(pid_text)
    if start != "?":
        return _process_start_ticks(pid) == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
