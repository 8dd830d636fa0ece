"""What the agent hook answers Claude Code: an exit code and one line on stderr.

A plain class rather than a dataclass: it is on the path of every agent command, and
importing :mod:`dataclasses` costs more than deciding a benign command.
"""

from __future__ import annotations


class HookResult:
    """What the hook answers: the exit code, and stderr as whole newline-terminated lines."""

    __slots__ = ("exit_code", "stderr")

    def __init__(self, exit_code: int, stderr: str = "") -> None:
        self.exit_code = exit_code
        self.stderr = stderr

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HookResult):
            return NotImplemented
        return (self.exit_code, self.stderr) == (other.exit_code, other.stderr)

    def __hash__(self) -> int:
        return hash((self.exit_code, self.stderr))

    def __repr__(self) -> str:
        return f"HookResult(exit_code={self.exit_code!r}, stderr={self.stderr!r})"
