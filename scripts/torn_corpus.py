#!/usr/bin/env python3
"""Measure how guardian judges torn writes made by real writers, and ordinary edits.

Builds a corpus in a throw-away project (GUARDIAN_HOME in a temporary directory):

* torn writes: a Python child process rewrites a realistic .py (about 10 KB), .yaml (about
  2 KB) or .json (about 3 KB) file in place, line by line or in chunks with short sleeps, and
  is killed with SIGKILL once the file reaches a random offset.  It rewrites either the same
  text (a tool re-saving the file) or an edited version of it (a tool rewriting the file);
* writes in progress: the same writers, stopped (alive, file still open) at a random offset
  while a snapshot is taken, then killed and the file captured again;
* ordinary edits, written whole: add, append, rename, delete a definition or key in the
  middle, delete the last one, reorder, edit a value.

One full-scan snapshot then judges everything against the first (valid) version.  It reports
the share of torn versions caught (suspect or invalid), the share of ordinary edits flagged
(false alarms), and for comparison the same two figures for the checks guardian had before
(parse checks and the shrink heuristic only) and for the simpler rule "lost a top-level name,
gained none" in place of guardian's cut-short rule.  The kill offsets depend on timing, so
the counts move by a few between runs with the same seed.

    .venv/bin/python scripts/torn_corpus.py            # the figures in docs/reliability.md
    .venv/bin/python scripts/torn_corpus.py --quick --min-caught 90 --max-false-alarms 15   # CI
    .venv/bin/python scripts/torn_corpus.py --keep /tmp/torn   # and keep every sample to look at
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

KINDS = ("py", "yaml", "json")
EDITS = ("add", "append", "rename", "delete_middle", "delete_last", "reorder", "edit_value")

# The writer: rewrites dst in place (O_TRUNC, no temporary file) with src's bytes, line by line
# or in chunks, sleeping between writes.  With a hold offset it stops there and waits to be killed.
WRITER = r"""
import os, random, sys, time
src, dst, how, seed, pause, hold = sys.argv[1:7]
data = open(src, "rb").read()
rng = random.Random(int(seed))
if how == "lines":
    pieces = data.splitlines(keepends=True)
else:
    pieces, at = [], 0
    while at < len(data):
        size = rng.randint(16, 1024)
        pieces.append(data[at : at + size])
        at += size
hold = int(hold)
fd = os.open(dst, os.O_WRONLY | os.O_TRUNC)
sys.stdout.write("open\n")
sys.stdout.flush()
written = 0
for piece in pieces:
    if hold and written + len(piece) > hold:
        piece = piece[: hold - written]
    os.write(fd, piece)
    written += len(piece)
    if hold and written >= hold:
        sys.stdout.write("held\n")
        sys.stdout.flush()
        time.sleep(600)
    time.sleep(float(pause))
os.close(fd)
"""


# --------------------------------------------------------------------------- realistic files


VERBS = [
    "load",
    "save",
    "parse",
    "render",
    "fetch",
    "build",
    "check",
    "apply",
    "merge",
    "split",
    "count",
    "find",
    "update",
    "remove",
    "resolve",
    "encode",
]
NOUNS = [
    "config",
    "state",
    "task",
    "queue",
    "record",
    "batch",
    "user",
    "token",
    "report",
    "cache",
    "index",
    "entry",
    "path",
    "job",
    "worker",
    "event",
]
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "primary",
    "secondary",
    "local",
    "remote",
    "daily",
    "hourly",
    "fast",
    "safe",
    "strict",
]


@dataclass
class Doc:
    """A file as a header plus named top-level blocks (functions, classes, keys), and a footer."""

    kind: str
    header: str
    blocks: list[tuple[str, str]]
    footer: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # JSON only

    def render(self) -> bytes:
        if self.kind == "json":
            return (json.dumps(self.data, indent=2) + "\n").encode()
        sep = "\n\n\n" if self.kind == "py" else "\n"
        body = sep.join(text for _, text in self.blocks)
        parts = [self.header, body] + ([self.footer] if self.footer else [])
        return (sep.join(p.rstrip("\n") for p in parts) + "\n").encode()

    def copy(self) -> Doc:
        return Doc(self.kind, self.header, list(self.blocks), self.footer, json.loads(json.dumps(self.data)))


def _name(rng: random.Random, taken: set[str], parts: tuple[list[str], ...]) -> str:
    while True:
        name = "_".join(rng.choice(p) for p in parts)
        if name not in taken:
            taken.add(name)
            return name


def _py_statement(rng: random.Random, args: list[str], indent: str) -> str:
    a = rng.choice(args)
    n = rng.randint(1, 500)
    choices = [
        f'{indent}value = {a}.get("{rng.choice(NOUNS)}", {n})',
        f'{indent}if {a} is None:\n{indent}    raise ValueError("missing {rng.choice(NOUNS)}")',
        f"{indent}total = 0\n{indent}for item in {a}:\n{indent}    total += len(str(item))",
        f'{indent}log.debug("{rng.choice(VERBS)} %s", {a})',
        f'{indent}with open({a}, encoding="utf-8") as fh:\n{indent}    text = fh.read()',
        f"{indent}try:\n{indent}    result = json.loads({a})\n{indent}except ValueError:\n{indent}    result = {{}}",
        f"{indent}items = [x for x in {a} if x]",
        f"{indent}limit = min({n}, MAX_ITEMS)",
    ]
    return rng.choice(choices)


def _py_function(rng: random.Random, name: str, indent: str = "", method: bool = False) -> str:
    args = [rng.choice(NOUNS) for _ in range(rng.randint(1, 3))]
    args = list(dict.fromkeys(args))
    params = (["self"] if method else []) + args
    lines = []
    if not method and rng.random() < 0.2:
        lines.append(f"{indent}@functools.lru_cache(maxsize={rng.choice((32, 128, 256))})")
    lines.append(f"{indent}def {name}({', '.join(params)}):")
    lines.append(f'{indent}    """{name.replace("_", " ").capitalize()} from the given {args[0]}."""')
    for _ in range(rng.randint(2, 7)):
        lines.append(_py_statement(rng, args, indent + "    "))
    lines.append(f"{indent}    return {rng.choice(args)}")
    return "\n".join(lines)


def _py_class(rng: random.Random, name: str) -> str:
    lines = [f"class {name}:", f'    """A {name.lower()} kept between runs."""', ""]
    lines.append(f"    def __init__(self, {rng.choice(NOUNS)}_path):")
    lines.append("        self.path = Path(" + lines[-1].split("(self, ")[1].rstrip("):") + ")")
    lines.append("        self.items = []")
    taken: set[str] = set()
    for _ in range(rng.randint(1, 3)):
        lines.append("")
        lines.append(_py_function(rng, _name(rng, taken, (VERBS, NOUNS)), "    ", method=True))
    return "\n".join(lines)


def python_doc(rng: random.Random, size: int) -> Doc:
    header = (
        f'"""{rng.choice(NOUNS).capitalize()} handling for the {rng.choice(WORDS)} pipeline.\n\n'
        'Reads, checks and writes the files the workers share.\n"""\n\n'
        "from __future__ import annotations\n\nimport functools\nimport json\nimport logging\n"
        "from pathlib import Path\n\nlog = logging.getLogger(__name__)"
    )
    taken: set[str] = set()
    blocks: list[tuple[str, str]] = []
    consts = [(_name(rng, taken, (WORDS, NOUNS)).upper(), rng.randint(1, 9999)) for _ in range(rng.randint(2, 5))]
    consts.append(("MAX_ITEMS", rng.randint(100, 1000)))
    taken.add("MAX_ITEMS")
    blocks.append(("constants", "\n".join(f"{n} = {v}" for n, v in consts)))
    rendered = len(header)
    while rendered < size:
        if rng.random() < 0.2:
            name = _name(rng, taken, (NOUNS, NOUNS)).title().replace("_", "")
            text = _py_class(rng, name)
        else:
            name = _name(rng, taken, (VERBS, NOUNS))
            text = _py_function(rng, name)
        blocks.append((name, text))
        rendered += len(text) + 3
    footer = 'if __name__ == "__main__":\n    logging.basicConfig()' if rng.random() < 0.3 else ""
    return Doc("py", header, blocks, footer)


def _yaml_value(rng: random.Random, depth: int) -> str:
    pad = "  " * depth
    roll = rng.random()
    if roll < 0.45 or depth >= 3:
        keys = list(dict.fromkeys(rng.choice(NOUNS + WORDS) for _ in range(rng.randint(2, 6))))
        out = []
        for k in keys:
            if depth < 2 and rng.random() < 0.3:
                out.append(f"{pad}{k}:\n{_yaml_value(rng, depth + 1)}")
            else:
                out.append(f"{pad}{k}: {_yaml_scalar(rng)}")
        return "\n".join(out)
    if roll < 0.8:
        return "\n".join(f"{pad}- {_yaml_scalar(rng)}" for _ in range(rng.randint(2, 5)))
    return "\n".join(
        f"{pad}- name: {rng.choice(NOUNS)}-{i}\n{pad}  {rng.choice(WORDS)}: {_yaml_scalar(rng)}"
        for i in range(rng.randint(2, 4))
    )


def _yaml_scalar(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.3:
        return str(rng.randint(0, 10000))
    if roll < 0.45:
        return rng.choice(("true", "false"))
    if roll < 0.6:
        return f'"/var/lib/{rng.choice(NOUNS)}/{rng.choice(WORDS)}"'
    return f"{rng.choice(WORDS)}-{rng.choice(NOUNS)}"


def yaml_doc(rng: random.Random, size: int) -> Doc:
    header = f"# {rng.choice(WORDS)} service configuration\n# Edited by hand and by the deploy tool."
    taken: set[str] = set()
    blocks: list[tuple[str, str]] = []
    rendered = len(header)
    while rendered < size:
        key = _name(rng, taken, (NOUNS,)) if len(taken) < len(NOUNS) else _name(rng, taken, (NOUNS, WORDS))
        if rng.random() < 0.25:
            text = f"{key}: {_yaml_scalar(rng)}"
        else:
            comment = f"# {rng.choice(VERBS)} {rng.choice(NOUNS)} settings\n" if rng.random() < 0.3 else ""
            text = f"{comment}{key}:\n{_yaml_value(rng, 1)}"
        blocks.append((key, text))
        rendered += len(text) + 1
    return Doc("yaml", header, blocks)


def json_doc(rng: random.Random, size: int) -> Doc:
    data: dict[str, Any] = {"version": rng.randint(1, 9), "updated": f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"}
    data["pipeline"] = {w: rng.choice((True, False, rng.randint(0, 99), rng.choice(NOUNS))) for w in WORDS[:6]}
    tasks: list[dict[str, Any]] = []
    while len(json.dumps(data, indent=2)) + len(json.dumps(tasks, indent=2)) < size * 0.8:
        tasks.append(
            {
                "id": f"{rng.choice(VERBS)}-{len(tasks)}",
                "status": rng.choice(("done", "pending", "failed", "running")),
                "files": [f"src/{rng.choice(NOUNS)}.py" for _ in range(rng.randint(1, 3))],
                "attempts": rng.randint(0, 4),
            }
        )
    data["tasks"] = tasks
    for key in ("history", "metrics", "owners"):
        data[key] = {rng.choice(NOUNS): rng.randint(0, 1000) for _ in range(rng.randint(2, 5))}
    return Doc("json", "", [], "", data)


MAKERS: dict[str, Callable[[random.Random], Doc]] = {
    "py": lambda rng: python_doc(rng, rng.randint(7000, 13000)),
    "yaml": lambda rng: yaml_doc(rng, rng.randint(1500, 3000)),
    "json": lambda rng: json_doc(rng, rng.randint(2000, 4000)),
}


# --------------------------------------------------------------------------- ordinary edits


def _new_block(rng: random.Random, doc: Doc) -> tuple[str, str]:
    taken = {name for name, _ in doc.blocks}
    if doc.kind == "py":
        name = _name(rng, taken, (VERBS, NOUNS, WORDS))
        return name, _py_function(rng, name)
    key = _name(rng, taken, (NOUNS, WORDS))
    return key, f"{key}:\n{_yaml_value(rng, 1)}"


def edit(rng: random.Random, doc: Doc, how: str) -> Doc:
    """doc with one ordinary edit of kind ``how``."""
    new = doc.copy()
    if new.kind == "json":
        _edit_json(rng, new.data, how)
        return new
    blocks = new.blocks
    named = list(range(1, len(blocks))) if new.kind == "py" else list(range(len(blocks)))  # py: skip constants
    if how == "add":
        blocks.insert(rng.randint(named[0], len(blocks) - 1), _new_block(rng, new))
    elif how == "append":
        blocks.append(_new_block(rng, new))
    elif how == "rename":
        i = rng.choice(named)
        old_name = blocks[i][0]
        new_name = f"{old_name}_v2" if new.kind == "py" or not old_name[0].isupper() else f"{old_name}V2"
        blocks[:] = [(new_name if n == old_name else n, _rename(new.kind, t, old_name, new_name)) for n, t in blocks]
    elif how == "delete_middle":
        del blocks[rng.choice(named[1:-1])]
    elif how == "delete_last":
        del blocks[-1]
    elif how == "reorder":
        i = rng.choice(named[:-1])
        blocks[i], blocks[i + 1] = blocks[i + 1], blocks[i]
    elif how == "edit_value":
        i = rng.choice(range(len(blocks)))
        name, text = blocks[i]
        blocks[i] = (name, _edit_number(rng, text))
    return new


def _rename(kind: str, text: str, old: str, new: str) -> str:
    import re

    if kind == "yaml":  # the key only, not the same word in a value
        return re.sub(rf"^{re.escape(old)}:", f"{new}:", text, flags=re.MULTILINE)
    return re.sub(rf"(?<![\w.]){re.escape(old)}(?!\w)", new, text)


def _edit_number(rng: random.Random, text: str) -> str:
    import re

    numbers = list(re.finditer(r"(?<![\w.])\d+(?![\w.])", text))
    if not numbers:
        return text.replace("true", "false", 1) if "true" in text else text + "  # checked"
    m = rng.choice(numbers)
    return text[: m.start()] + str(int(m.group()) + rng.randint(1, 50)) + text[m.end() :]


def _edit_json(rng: random.Random, data: dict[str, Any], how: str) -> None:
    keys = list(data)
    if how in ("add", "append"):
        entry = {rng.choice(NOUNS): rng.randint(0, 99) for _ in range(3)}
        if how == "append":
            data[f"{rng.choice(WORDS)}_{rng.choice(NOUNS)}"] = entry
        else:
            at = rng.randint(1, len(keys) - 1)
            items = list(data.items())
            items.insert(at, (f"{rng.choice(WORDS)}_{rng.choice(NOUNS)}", entry))
            data.clear()
            data.update(items)
    elif how == "rename":
        key = rng.choice(keys)
        items = [(f"{k}_v2" if k == key else k, v) for k, v in data.items()]
        data.clear()
        data.update(items)
    elif how == "delete_middle":
        del data[rng.choice(keys[1:-1])]
    elif how == "delete_last":
        del data[keys[-1]]
    elif how == "reorder":
        i = rng.randrange(len(keys) - 1)
        keys[i], keys[i + 1] = keys[i + 1], keys[i]
        items = [(k, data[k]) for k in keys]
        data.clear()
        data.update(items)
    elif how == "edit_value":
        tasks = data["tasks"]
        task = rng.choice(tasks) if tasks else data
        task["status" if "status" in task else "version"] = rng.choice(("done", "failed", "retry"))


# --------------------------------------------------------------------------- writers


def run_writer(src: Path, dst: Path, how: str, seed: int, target: int, *, hold: bool) -> subprocess.Popen[bytes]:
    """Start a writer; return it killed at about ``target`` bytes, or (hold) stopped there, alive."""
    pause = "0.0005" if how == "lines" else "0.002"
    argv = [sys.executable, "-c", WRITER, str(src), str(dst), how, str(seed), pause, str(target if hold else 0)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"open\n"
    if hold:
        assert proc.stdout.readline() == b"held\n"
        return proc
    while proc.poll() is None and dst.stat().st_size < target:
        time.sleep(0.0001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc


# --------------------------------------------------------------------------- the run


@dataclass
class Sample:
    group: str  # torn, progress, edit
    kind: str  # py, yaml, json
    detail: str  # torn: "<lines|chunks> <same|edited>"; edit: the edit
    rel: str
    before: bytes
    intended: bytes = b""  # what the writer or the edit meant the file to hold
    after: bytes = b""  # what the file held when judged
    verdict: str = ""
    reason: str = ""
    settled: str = ""  # progress: the verdict once the writer was killed
    settled_reason: str = ""
    old_verdict: str = ""  # parse checks and shrink only, as before the torn-write checks
    simple_flag: bool = False  # "lost a top-level name, gained none"


def build(rng: random.Random, root: Path, src_dir: Path, per_cell: int, per_edit: int, progress: int) -> list[Sample]:
    samples: list[Sample] = []
    n = 0
    for kind in KINDS:
        for how in ("lines", "chunks"):
            for content in ("same", "edited"):
                for _ in range(per_cell):
                    samples.append(Sample("torn", kind, f"{how} {content}", f"torn/{kind}/{n:04d}.{kind}", b""))
                    n += 1
        for _ in range(progress):
            samples.append(Sample("progress", kind, rng.choice(("lines", "chunks")), f"progress/{n:04d}.{kind}", b""))
            n += 1
        for how in EDITS:
            for _ in range(per_edit):
                samples.append(Sample("edit", kind, how, f"edit/{kind}/{n:04d}.{kind}", b""))
                n += 1
    docs: dict[str, Doc] = {}
    for s in samples:
        doc = MAKERS[s.kind](rng)
        docs[s.rel] = doc
        s.before = doc.render()
        path = root / s.rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(s.before)
    for s in samples:
        doc = docs[s.rel]
        if s.group == "edit":
            s.intended = edit(rng, doc, s.detail).render()
        elif s.detail.endswith("edited"):
            s.intended = edit(rng, doc, rng.choice(EDITS)).render()
        else:
            s.intended = s.before
        (src_dir / s.rel.replace("/", "_")).write_bytes(s.intended)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small corpus, for CI")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", type=Path, help="write every sample (before, after, verdict) under this directory")
    parser.add_argument("--min-caught", type=float, metavar="PCT", help="exit 1 if fewer torn versions are caught")
    parser.add_argument("--max-false-alarms", type=float, metavar="PCT", help="exit 1 if more edits are flagged")
    args = parser.parse_args()
    per_cell, per_edit, progress = (3, 2, 2) if args.quick else (25, 30, 10)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="guardian-torn-") as tmp:
        os.environ["GUARDIAN_HOME"] = str(Path(tmp) / "home")
        root = Path(tmp) / "project"
        src_dir = Path(tmp) / "sources"
        root.mkdir()
        src_dir.mkdir()
        samples = build(rng, root, src_dir, per_cell, per_edit, progress)
        figures = measure(rng, root, src_dir, samples)
    if args.keep is not None:
        keep(args.keep, samples)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print_report(figures, args)
    return 1 if out_of_bounds(figures, args) else 0


def out_of_bounds(figures: dict[str, Any], args: argparse.Namespace) -> bool:
    """Whether a figure misses the bound given on the command line (said on stderr)."""
    failed = False
    for bound, pair, word, low in (
        (args.min_caught, figures["torn"]["caught"], "torn versions caught", True),
        (args.max_false_alarms, figures["edits"]["false_alarms"], "ordinary edits flagged", False),
    ):
        if bound is None or not pair[1]:
            continue
        percent = 100 * pair[0] / pair[1]
        if (percent < bound) if low else (percent > bound):
            print(f"torn_corpus: {percent:.1f}% of {word}, {'under' if low else 'over'} {bound:g}%", file=sys.stderr)
            failed = True
    return failed


def keep(folder: Path, samples: list[Sample]) -> None:
    """Each sample's versions as files, and an index of verdicts, for a closer look."""
    index = []
    for s in samples:
        base = folder / s.rel
        base.parent.mkdir(parents=True, exist_ok=True)
        for suffix, data in (("before", s.before), ("intended", s.intended), ("after", s.after)):
            base.with_name(f"{base.name}.{suffix}").write_bytes(data)
        index.append({"rel": s.rel, "group": s.group, "detail": s.detail, "verdict": s.verdict, "reason": s.reason})
    (folder / "index.json").write_text(json.dumps(index, indent=2) + "\n")


def measure(rng: random.Random, root: Path, src_dir: Path, samples: list[Sample]) -> dict[str, Any]:
    from guardian.ops.initialize import init_project
    from guardian.ops.snapshot import take_snapshot
    from guardian.project import Project

    init_project(root)
    project = Project.find(root)
    held: list[subprocess.Popen[bytes]] = []
    try:
        for i, s in enumerate(samples):
            src, dst = src_dir / s.rel.replace("/", "_"), root / s.rel
            if s.group == "edit":
                tmp = dst.with_name(dst.name + ".tmp")
                tmp.write_bytes(s.intended)
                tmp.replace(dst)
                continue
            how = s.detail.split()[0]
            target = rng.randint(1, len(s.intended) - 1)
            proc = run_writer(src, dst, how, i, target, hold=s.group == "progress")
            if s.group == "progress":
                held.append(proc)
        first = take_snapshot(project, None, "manual")
    finally:
        for proc in held:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    second = take_snapshot(project, None, "manual")
    judged = {f.path: f for f in first.files}
    settled = {f.path: f for f in second.files}
    for s in samples:
        s.after = (root / s.rel).read_bytes()
        f = judged.get(s.rel)
        s.verdict, s.reason = (f.verdict, f.reason) if f is not None else ("unchanged", "")
        if s.group == "progress" and s.rel in settled:
            s.settled, s.settled_reason = settled[s.rel].verdict, settled[s.rel].reason
        s.old_verdict = old_verdict(project, s)
        s.simple_flag = simple_rule(s)
    return summarize(samples)


def old_verdict(project: Any, s: Sample) -> str:
    from guardian.capture.validate import checks_for, judge

    checks = checks_for(s.rel, project.policy.validate)
    return judge(s.rel, s.after, checks, last_valid_size=len(s.before), suspect=project.policy.suspect).verdict


def simple_rule(s: Sample) -> bool:
    """The simpler rule, for comparison: a top-level name lost and none gained (both must parse)."""
    from guardian.capture.torn import python_outline, yaml_outline

    if s.kind == "py":
        old, new = python_outline(s.before), python_outline(s.after)
    elif s.kind == "yaml":
        try:
            old, new = yaml_outline(s.before.decode()), yaml_outline(s.after.decode())
        except UnicodeDecodeError:
            return False
    else:
        return False
    if old is None or new is None:
        return False
    old_names, new_names = {n for n, _ in old}, {n for n, _ in new}
    return bool(old_names - new_names) and not new_names - old_names


def _reason_kind(s: Sample) -> str:
    if s.verdict in ("invalid", "valid"):
        return {"invalid": "invalid (does not parse)", "valid": "missed (valid)"}[s.verdict]
    found = [label for key, label in _REASONS if key in s.reason]
    return " + ".join(found) or "suspect (other)"


_REASONS = (
    ("still open for writing", "still open"),
    ("shrank", "shrank"),
    ("a strict prefix", "strict prefix"),
    ("top-level", "cut short (outline)"),
)


def summarize(samples: list[Sample]) -> dict[str, Any]:
    torn = [s for s in samples if s.group == "torn" and s.after != s.intended]
    harmless = [s for s in torn if s.intended.startswith(s.after) and not s.intended[len(s.after) :].strip()]
    counted = [s for s in torn if s not in harmless]
    edits = [s for s in samples if s.group == "edit" and s.intended != s.before]  # some value edits change nothing
    progress = [s for s in samples if s.group == "progress"]
    open_flagged = [s for s in progress if "still open for writing" in s.reason]

    def share(items: list[Sample], flagged: Callable[[Sample], bool]) -> list[int]:
        return [sum(1 for s in items if flagged(s)), len(items)]

    def caught(s: Sample) -> bool:
        return s.verdict in ("suspect", "invalid")

    def caught_before(s: Sample) -> bool:
        return s.old_verdict in ("suspect", "invalid")

    def caught_simple(s: Sample) -> bool:
        # The same checks with the simpler rule in place of the lost-tail one.
        lost_tail_only = s.verdict == "suspect" and s.reason.startswith(("python: ", "yaml: ")) and ";" not in s.reason
        return (caught(s) and not lost_tail_only) or s.simple_flag

    by_cell: dict[str, list[Sample]] = defaultdict(list)
    for s in counted:
        by_cell[f"{s.kind} {s.detail}"].append(s)
    parsing = [s for s in counted if s.verdict != "invalid"]
    by_edit: dict[str, list[Sample]] = defaultdict(list)
    for s in edits:
        by_edit[f"{s.kind} {s.detail}"].append(s)
    return {
        "torn": {
            "written": len([s for s in samples if s.group == "torn"]),
            "complete_before_kill": len([s for s in samples if s.group == "torn"]) - len(torn),
            "lost_only_whitespace": len(harmless),
            "counted": len(counted),
            "caught": share(counted, caught),
            "caught_before": share(counted, caught_before),
            "caught_simple_rule": share(counted, caught_simple),
            "still_parse": len(parsing),
            "caught_of_those_that_parse": share(parsing, caught),
            "caught_before_of_those_that_parse": share(parsing, caught_before),
            "by_reason": dict(Counter(_reason_kind(s) for s in counted).most_common()),
            "by_cell": {k: share(v, caught) for k, v in sorted(by_cell.items())},
            "by_cell_before": {k: share(v, caught_before) for k, v in sorted(by_cell.items())},
            "missed_examples": [s.rel for s in counted if not caught(s)][:10],
        },
        "progress": {
            "held": len(progress),
            "invalid": len([s for s in progress if s.verdict == "invalid"]),
            "flagged_open_of_the_rest": share(
                [s for s in progress if s.verdict != "invalid"], lambda s: "still open for writing" in s.reason
            ),
            "judged_again": share(open_flagged, lambda s: bool(s.settled)),
            "judged_again_by_verdict": dict(Counter(s.settled or "not judged again" for s in open_flagged)),
        },
        "edits": {
            "count": len(edits),
            "false_alarms": share(edits, caught),
            "false_alarms_before": share(edits, caught_before),
            "false_alarms_simple_rule": share(edits, caught_simple),
            "by_edit": {k: share(v, caught) for k, v in sorted(by_edit.items())},
            "by_edit_simple_rule": {k: share(v, caught_simple) for k, v in sorted(by_edit.items())},
            "reasons": dict(Counter(s.reason.split(":")[0] for s in edits if caught(s)).most_common()),
        },
    }


def _pct(pair: list[int]) -> str:
    done, total = pair
    return f"{done}/{total} ({100 * done / total:.1f}%)" if total else "0/0"


def print_report(f: dict[str, Any], args: argparse.Namespace) -> None:
    t, p, e = f["torn"], f["progress"], f["edits"]
    mode = " --quick" if args.quick else ""
    print(f"# torn-write corpus (seed {args.seed}{mode})\n")
    print(f"torn writes: {t['written']} writers killed; {t['complete_before_kill']} finished first (not torn), ")
    print(f"{t['lost_only_whitespace']} lost only trailing whitespace (not counted); {t['counted']} counted\n")
    print("| | caught (suspect or invalid) | before these checks | with the simpler rule |")
    print("|---|---|---|---|")
    print(f"| all torn | {_pct(t['caught'])} | {_pct(t['caught_before'])} | {_pct(t['caught_simple_rule'])} |")
    print(
        f"| still parse ({t['still_parse']}) | {_pct(t['caught_of_those_that_parse'])} | "
        f"{_pct(t['caught_before_of_those_that_parse'])} | |"
    )
    print("\n| file, writer, content | caught | before |")
    print("|---|---|---|")
    for cell, pair in t["by_cell"].items():
        print(f"| {cell} | {_pct(pair)} | {_pct(t['by_cell_before'][cell])} |")
    print("\nverdicts of the torn versions: " + ", ".join(f"{k} {v}" for k, v in t["by_reason"].items()))
    print(
        f"\nwrites in progress (writer alive during the snapshot): {p['held']}; {p['invalid']} invalid; "
        f"the rest flagged 'still open for writing': {_pct(p['flagged_open_of_the_rest'])}; "
        f"those judged again once the writer was killed: {_pct(p['judged_again'])} "
        f"({', '.join(f'{k} {v}' for k, v in p['judged_again_by_verdict'].items())})"
    )
    print(
        f"\nordinary edits: {e['count']}; false alarms {_pct(e['false_alarms'])} "
        f"(before these checks {_pct(e['false_alarms_before'])}, with the simpler rule "
        f"{_pct(e['false_alarms_simple_rule'])})\n"
    )
    print("| file, edit | flagged | with the simpler rule |")
    print("|---|---|---|")
    for cell, pair in e["by_edit"].items():
        print(f"| {cell} | {_pct(pair)} | {_pct(e['by_edit_simple_rule'][cell])} |")
    if t["missed_examples"]:
        print("\nmissed (first few): " + ", ".join(t["missed_examples"]))


if __name__ == "__main__":
    sys.exit(main())
