"""The trusted policy: the last accepted guardian.yaml, kept in the store, decides what is protected.

guardian.yaml sits in the work tree, where any tool can rewrite it: ``git reset`` to a
commit whose policy is laxer, ``git clean -fdx`` of an untracked one, an agent "fixing"
it.  If the file on disk were always the policy, each of those would switch protection
off at the moment it is needed.  So the store keeps the accepted text
(``<store>/policy.accepted.yaml``) and the policy in force is:

- the file on disk, when it is the accepted text;
- the file on disk, accepted on the spot, when it keeps every protection the accepted
  one has (its protect rules are each kept at least as strict, its other settings are
  unchanged, and validation rules are only added): tightening never waits for anyone;
- the file on disk, accepted on the spot, when a force grant covers ``modify`` of
  guardian.yaml (``guardian allow modify guardian.yaml``);
- otherwise the accepted policy, and ``pending`` says why the file on disk is not in
  force, until ``guardian policy accept``.

A guardian.yaml that does not parse is still an error (a clear message beats a silent
guess), and a missing one falls back to the accepted text.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from guardian.config import Policy, ProtectRule, parse_policy
from guardian.paths import POLICY_FILENAME
from guardian.util.fs import atomic_write_file

ACCEPTED_FILE = "policy.accepted.yaml"
_RANK = {"allow": 0, "force": 1, "block": 2}
_RULE_OPERATIONS = ("rollback", "delete", "restore", "modify")


class TrustedPolicy(NamedTuple):
    """The policy in force and where it came from.  (A NamedTuple: a dataclass costs ~1 ms to create on import.)"""

    policy: Policy
    source: str  # "disk", "accepted" (the store's copy), or "disk, accepted now" with why
    pending: str | None = None  # why the file on disk is not the policy in force
    accepted_now: str | None = None  # set when this load accepted the file on disk, and why


def accepted_path(store: Path) -> Path:
    return store / ACCEPTED_FILE


def read_accepted(store: Path) -> str | None:
    try:
        return accepted_path(store).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def write_accepted(store: Path, text: str) -> None:
    from guardian.trust.hook_pathspec import write_pathspec_file  # only when a policy is accepted

    atomic_write_file(accepted_path(store), text.encode("utf-8"), 0o600)
    write_pathspec_file(store, text.encode("utf-8"))  # the git hooks' fast path follows the accepted policy


def _action(rule: ProtectRule, operation: str) -> str:
    return rule.modify_action if operation == "modify" else str(getattr(rule, operation))


def weakenings(old: Policy, new: Policy) -> list[str]:
    """What ``new`` gives up of ``old``'s protection, one line each; empty when it keeps all of it."""
    found: list[str] = []
    for rule in old.protect:
        wanted = set(rule.paths)
        candidates = [r for r in new.protect if set(r.paths) >= wanted]
        label = ", ".join(rule.paths)
        if not candidates:
            found.append(f"the rule for {label} is gone")
            continue
        best = max(candidates, key=lambda r: sum(_RANK[_action(r, op)] for op in _RULE_OPERATIONS))
        for op in _RULE_OPERATIONS:
            if _RANK[_action(best, op)] < _RANK[_action(rule, op)]:
                found.append(f"{label}: {op} {_action(rule, op)} -> {_action(best, op)}")
    missing_checks = [v for v in old.validate if v not in new.validate]
    if missing_checks:
        found.append(f"{len(missing_checks)} validate rule(s) removed or changed")
    # Every other section but the source must be unchanged (protect and validate are weighed above).
    for section in ("version", "watch", "suspect", "guardrail", "retention", "store", "mirror"):
        if getattr(old, section) != getattr(new, section):
            found.append(f"the '{section}' settings changed")
    return found


def _command_checks(policy: Policy) -> set[tuple[str, ...]]:
    return {spec.command for rule in policy.validate for spec in rule.checks if spec.name == "command"}


def new_command_checks(old: Policy, new: Policy) -> list[str]:
    """The programs that ``new``'s command checks would run and ``old``'s do not."""
    return sorted({argv[0] for argv in _command_checks(new) - _command_checks(old) if argv})


def without_command_checks(text: str) -> str:
    """Policy text with every ``{command: ...}`` check left out (rules left with no check dropped).

    ``init --from`` accepts a mirror's policy this way: its protect rules take effect at once,
    its programs only after the person accepts them.
    """
    import yaml

    raw = yaml.safe_load(text)
    if not isinstance(raw, dict):
        return text
    rules = raw.get("validate")
    if isinstance(rules, list):
        kept = []
        for rule in rules:
            if isinstance(rule, dict) and isinstance(rule.get("checks"), list):
                rule = {**rule, "checks": [c for c in rule["checks"] if not (isinstance(c, dict) and "command" in c)]}
                if not rule["checks"]:
                    continue
            kept.append(rule)
        raw["validate"] = kept
    header = "# Accepted without its command checks; 'guardian policy accept' puts them in force.\n"
    return header + yaml.safe_dump(raw, sort_keys=False)


def trusted_policy(policy_file: Path, store: Path, load_disk: Callable[[Path], Policy]) -> TrustedPolicy | None:
    """The policy in force for a project with a store; None when the store has no accepted copy yet.

    ``load_disk`` parses the file on disk and raises ConfigError when it is broken.
    """
    accepted_text = read_accepted(store)
    if accepted_text is None:
        return None
    source = f"{POLICY_FILENAME} accepted in {store}"
    if not policy_file.exists() and not policy_file.is_symlink():
        return TrustedPolicy(
            parse_policy(accepted_text, source),
            "accepted",
            pending=f"{policy_file} is missing; the accepted policy stays in force "
            f"(bring the file back with 'guardian restore {POLICY_FILENAME}')",
        )
    disk = load_disk(policy_file)
    try:
        disk_text = policy_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        disk_text = None
    if disk_text == accepted_text:
        return TrustedPolicy(disk, "disk")
    accepted = parse_policy(accepted_text, source)
    lost = weakenings(accepted, disk)
    programs = new_command_checks(accepted, disk)
    if programs:
        # A command check runs a program on every capture: an agent that writes one into
        # guardian.yaml, or a mirror's policy fetched by `init --from`, must not get code run.
        shown_programs = ", ".join(programs[:3]) + (f", +{len(programs) - 3} more" if len(programs) > 3 else "")
        return TrustedPolicy(
            accepted,
            "accepted",
            pending=f"{policy_file} adds command checks that would run programs ({shown_programs}); "
            "run 'guardian policy accept' to put it in force",
        )
    if not lost:
        return _accept(store, disk, disk_text, "it keeps every protection of the accepted policy")
    from guardian.trust.grants import covering_grant  # here: a plain read of the policy never needs the grants

    grant = covering_grant(store, "modify", POLICY_FILENAME)
    if grant is not None:
        return _accept(store, disk, disk_text, f"grant {grant.id} ({grant.by}) allows editing it")
    shown = "; ".join(lost[:3]) + (f"; +{len(lost) - 3} more" if len(lost) > 3 else "")
    return TrustedPolicy(
        accepted,
        "accepted",
        pending=f"{policy_file} differs from the policy in force and would weaken it ({shown}); "
        "run 'guardian policy accept' to put it in force",
    )


def _accept(store: Path, disk: Policy, disk_text: str | None, why: str) -> TrustedPolicy:
    if disk_text is not None:
        try:
            write_accepted(store, disk_text)
        except OSError:
            pass  # a read-only store: the file is still in force for this command, and accepted next time
    return TrustedPolicy(disk, "disk", accepted_now=why)
