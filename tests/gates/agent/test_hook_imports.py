"""The agent hook's quick look reads its JSON without importing json (and re, enum, functools with it).

That import chain was most of what a benign command cost over a bare interpreter;
the quick look uses the same C scanner json does, with json's default settings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from guardian.gates.agent.hook import _loads


def test_a_benign_command_imports_neither_json_nor_re(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from guardian.gates.agent.hook import main\n"
        "rc = main()\n"
        "print(rc, [m for m in ('json', 're', 'enum', 'functools') if m in sys.modules])\n"
    )
    call = {"tool_name": "Bash", "tool_input": {"command": "ls -la"}, "cwd": str(tmp_path)}
    payload = json.dumps({**call, "hook_event_name": "PreToolUse"})
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=payload,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.stdout == "0 []\n", proc.stderr


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        ' {"a": [1, 2.5, -3e2, true, false, null, "x\\u00e9\\n"]} \n',
        '{"k": "\u00e9", "nested": {"l": [{}, []]}}',
        "[NaN, Infinity, -Infinity]",
        '"s"',
        "12",
    ],
)
def test_the_quick_reader_reads_as_json_does(text: str) -> None:
    for data in (text, text.encode("utf-8")):
        assert repr(_loads(data)) == repr(json.loads(data))


@pytest.mark.parametrize("data", [b"", b"{", b'{"a": 1} x', b'{"a": 1}{}', b'\xef\xbb\xbf{"a": 1}', b'{"a": "\x01"}'])
def test_what_the_quick_reader_cannot_read_goes_to_the_full_path(data: bytes) -> None:
    with pytest.raises(ValueError):
        _loads(data)
