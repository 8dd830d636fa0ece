"""A look at inline code (``python -c``, a here-document fed to node, ``perl -e``): does it touch files?

guardian does not run or fully parse the code.  It looks for the calls that
delete or write files in each language (``shutil.rmtree``, ``fs.rmSync``,
``FileUtils.rm_rf``, ``unlink``...), for calls that hand a string to a shell
(``os.system``, ``execSync``, ``system``), which are then read as shell
commands, and for what makes code unreadable (``eval``, ``__import__``,
base64).  The string literals in the code are the paths it could mean.  Code
that mentions none of the ways to reach a file changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class CodeFacts:
    api: str  # "delete", "write", "any" (cannot tell) or "" (no file API seen)
    literals: tuple[str, ...]  # string literals: the paths the code could mean
    shell: tuple[str, ...]  # strings handed to a shell, to be read as commands
    touches: bool  # mentions anything that can reach a file or a process at all


_DELETE = {
    "python": r"\bos\s*\.\s*(remove|unlink|rmdir|removedirs|rename|renames|replace)\s*\("
              r"|\bshutil\s*\.\s*(rmtree|move)\s*\(|\.\s*(unlink|rmdir|rename)\s*\(|(^|[^.\w])(rmtree|remove|unlink|removedirs)\s*\(",
    "node": r"\b(unlink|unlinkSync|rm|rmSync|rmdir|rmdirSync|rename|renameSync|remove|removeSync|emptyDir"
            r"|emptyDirSync|rimraf|rimrafSync)\s*\(",
    "ruby": r"\bFile\s*\.\s*(delete|unlink|rename)\b|\bFileUtils\s*\.\s*(rm\w*|remove\w*|mv|move)\b"
            r"|\bDir\s*\.\s*(delete|rmdir|unlink)\b",
    "perl": r"\b(unlink|rmdir|rename|rmtree|remove_tree|move)\b",
    "php": r"\b(unlink|rmdir|rename)\s*\(",
    "lua": r"\bos\s*\.\s*(remove|rename)\b",
    "awk": r"$^",
}
_WRITE = {
    "python": r"\bopen\s*\([^)]*['\"][rbt]*[wax+]|\.\s*(write_text|write_bytes)\s*\(|\bos\s*\.\s*truncate\s*\("
              r"|\bshutil\s*\.\s*(copy|copy2|copyfile|copytree)\s*\(",
    "node": r"\b(writeFile|writeFileSync|truncate|truncateSync|copyFile|copyFileSync|cp|cpSync|outputFile"
            r"|outputFileSync|createWriteStream)\s*\(",
    "ruby": r"\bFile\s*\.\s*(write|truncate)\b|\bFile\s*\.\s*open\s*\(?[^)]*['\"][wa]|\bIO\s*\.\s*write\b"
            r"|\bFileUtils\s*\.\s*(cp\w*|copy\w*|install)\b",
    "perl": r"\bopen\s*\(?\s*(my\s+)?[$\w]+\s*,\s*['\"]\s*(\+?[>])|\bopen\s*\(?\s*\w+\s*,?\s*['\"]\s*>|\btruncate\b",
    "php": r"\bfile_put_contents\s*\(|\bfopen\s*\([^)]*['\"][wax]",
    "lua": r"\bio\s*\.\s*open\s*\([^)]*['\"][wa]",
    "awk": r"\bprint[f]?\b[^;]*>\s*[\"(]",
}
_EXEC = {
    "python": r"\bos\s*\.\s*(system|popen|exec\w*|spawn\w*)\s*\(|\bsubprocess\b|\bpty\s*\.\s*spawn",
    "node": r"\b(exec|execSync|spawn|spawnSync|execFile|execFileSync)\s*\(|child_process",
    "ruby": r"\b(system|exec|spawn)\b|`|%x|\bOpen3\b",
    "perl": r"\b(system|exec|qx)\b|`",
    "php": r"\b(system|exec|shell_exec|passthru|popen|proc_open)\s*\(|`",
    "lua": r"\bos\s*\.\s*execute\b|\bio\s*\.\s*popen\b",
    "awk": r"\bsystem\s*\(|\|\s*\"",
}
_OBSCURE = {
    "python": r"\b(eval|exec|compile|__import__|getattr|importlib|base64|codecs|marshal|pickle|ctypes)\b",
    "node": r"\b(eval|Function|Buffer\s*\.\s*from|atob|vm)\b|require\s*\(\s*[^'\"\s]",
    "ruby": r"\b(eval|instance_eval|class_eval|send|public_send|Base64|const_get)\b",
    "perl": r"\beval\b|\bpack\b|\\x[0-9a-fA-F]{2}",
    "php": r"\b(eval|assert|create_function|base64_decode|call_user_func)\b",
    "lua": r"\b(load|loadstring|dofile)\b",
    "awk": r"$^",
}
# Anything that can reach a file or a process; code with none of these changes nothing.
_TOUCHES = re.compile(
    r"\b(open|os|shutil|pathlib|Path|subprocess|system|popen|spawn|exec|eval|fs|fsp|require|import|File|Dir|IO"
    r"|FileUtils|unlink|remove|rmtree|rmdir|rename|write\w*|truncate|child_process|qx|Deno|Bun|io|file_put_contents"
    r"|fopen|glob|getattr|__import__|compile|print\s*>|printf\s*>)\b|`|>\s*\"")
_STRING = re.compile(r"'((?:[^'\\\n]|\\.)*)'|\"((?:[^\"\\\n]|\\.)*)\"|`((?:[^`\\]|\\.)*)`")
_STRING_LIST = re.compile(r"\[\s*((?:['\"][^'\"\n]*['\"]\s*,\s*)*['\"][^'\"\n]*['\"])\s*,?\s*\]")


def scan(language: str, code: str) -> CodeFacts:
    """What ``code`` (in ``language``: python, node, ruby, perl, php, lua, awk) visibly does to files."""
    lang = language if language in _DELETE else "python"
    literals = tuple(dict.fromkeys(a or b or c for a, b, c in _STRING.findall(code) if (a or b or c)))
    touches = bool(_TOUCHES.search(code))
    if not touches:
        return CodeFacts("", literals, (), False)
    shell: list[str] = []
    if re.search(_EXEC[lang], code):
        for items in _STRING_LIST.findall(code):
            shell.append(" ".join(x.strip().strip("'\"") for x in items.split(",")))
        shell.extend(s for s in literals if " " in s.strip())
    if re.search(_OBSCURE[lang], code):
        api = "any"
    elif re.search(_DELETE[lang], code):
        api = "delete"
    elif re.search(_WRITE[lang], code):
        api = "write"
    else:
        api = ""
    return CodeFacts(api, literals, tuple(shell), True)
