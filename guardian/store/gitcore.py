"""The store's one way to pygit2: its C core alone when that is known to work, else the whole package.

``import pygit2`` costs ~165-190 ms CPU here, nearly all of it in the Python package around
the C core (pygit2.enums ~45 ms, settings and callbacks pulling in ssl, socket and tarfile,
cffi ~13 ms); the C core ``pygit2._pygit2`` alone loads in ~20 ms.  Every short command that
opens the store (restore, the post-checkout hook, snapshot, the watcher's start) paid the whole
import, so this module loads only the core, under its own name in sys.modules: a later
``import pygit2`` reuses it, and the classes stay the same objects.  The store uses the core's
C-level classes; the few paths that need the Python package (creating a store, the store's git
config, packing) import it at that call site (``full_repository``).

Anything unexpected (another platform or pygit2 release, a missing file or name) falls back to
a plain ``import pygit2``, and so does ``GUARDIAN_PYGIT2_FULL=1``, or a pygit2 already imported.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pygit2
    from pygit2._pygit2 import (
        Blob,
        Commit,
        GitError,
        InvalidSpecError,
        Object,
        OdbBackend,
        Oid,
        Reference,
        Repository,
        Signature,
        Tree,
        TreeBuilder,
    )

ENV_FULL = "GUARDIAN_PYGIT2_FULL"
# The pygit2 releases whose C core was checked against what this module relies on: the enums
# _cache_enums() reads, init_file_backend(path, flags), Repository._pointer for full_repository.
VERIFIED_RELEASES = ("1.21.",)
# What _pygit2._cache_enums() reads from pygit2.enums (1.21); a release that reads another
# name fails the load, which then falls back.  Until the package is imported (and caches the
# real enums), plain ints stand in: an IntEnum compares equal to its int.
_CACHED_ENUMS = (
    "DeltaStatus",
    "DiffFlag",
    "FileMode",
    "FileStatus",
    "MergeAnalysis",
    "MergePreference",
    "ObjectType",
    "ReferenceType",
)
# libgit2's own values (git_libgit2_opt_t, git_repository_open_flag_t), which the core does not
# export; tests/store/test_gitcore.py checks them against pygit2.enums.
OPT_ENABLE_STRICT_OBJECT_CREATION = 14
OPT_ENABLE_FSYNC_GITDIR = 19
REPOSITORY_OPEN_BARE = 4
_NAMES = (
    "Blob",
    "Commit",
    "GitError",
    "InvalidSpecError",
    "Object",
    "OdbBackend",
    "Oid",
    "Reference",
    "Repository",
    "Signature",
    "Tree",
    "TreeBuilder",
    "hash",
    "init_file_backend",
    "GIT_OID_HEXSZ",
    "GIT_DELTA_ADDED",
    "GIT_DELTA_DELETED",
)


def _full_package() -> types.ModuleType:
    import pygit2

    return pygit2


def _core_path() -> str | None:
    """The C core's file when the installed pygit2 is a verified release, else None.

    find_spec of a top-level package only locates it: pygit2/__init__ does not run.
    """
    spec = importlib.util.find_spec("pygit2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for directory in spec.submodule_search_locations:
        site = os.path.dirname(directory)
        try:
            names = os.listdir(site)
        except OSError:
            return None
        if not any(
            name.startswith(f"pygit2-{release}") and name.endswith(".dist-info")
            for name in names
            for release in VERIFIED_RELEASES
        ):
            return None
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            candidate = os.path.join(directory, "_pygit2" + suffix)
            if os.path.isfile(candidate):
                return candidate
    return None


def _cache_int_enums(core: types.ModuleType) -> None:
    # _cache_enums() imports "pygit2.enums", which imports the package "pygit2" first: both
    # are stand-ins for the length of the call, and gone before anyone else can see them.
    enums = types.ModuleType("pygit2.enums")
    for name in _CACHED_ENUMS:
        setattr(enums, name, int)
    package = types.ModuleType("pygit2")
    package.enums = enums  # type: ignore[attr-defined]
    sys.modules["pygit2"], sys.modules["pygit2.enums"] = package, enums
    try:
        core._cache_enums()
    finally:
        del sys.modules["pygit2.enums"], sys.modules["pygit2"]


def _load_core() -> tuple[types.ModuleType, Callable[..., int]] | None:
    path = _core_path()
    if path is None:
        return None
    core = sys.modules.get("pygit2._pygit2")
    if core is None:
        spec = importlib.util.spec_from_file_location("pygit2._pygit2", path)
        if spec is None or spec.loader is None:
            return None
        core = importlib.util.module_from_spec(spec)
        sys.modules["pygit2._pygit2"] = core
        try:
            spec.loader.exec_module(core)
        except BaseException:
            del sys.modules["pygit2._pygit2"]
            raise
    _cache_int_enums(core)
    for name in _NAMES:
        getattr(core, name)
    # The same libgit2 the core links (dlsym on its handle searches its dependencies).
    opts: Callable[..., int] = ctypes.CDLL(path).git_libgit2_opts
    opts.restype = ctypes.c_int  # type: ignore[attr-defined]
    return core, opts


def _load() -> tuple[types.ModuleType, Callable[..., int] | None]:
    """(the module to take the names from, libgit2's git_libgit2_opts when that module is the bare core)."""
    # Linux only: git_libgit2_opts is variadic, which ctypes calls correctly on the Linux ABIs.
    if "pygit2" in sys.modules or os.environ.get(ENV_FULL) == "1" or not sys.platform.startswith("linux"):
        return _full_package(), None
    try:
        loaded = _load_core()
    except (ImportError, OSError, AttributeError, TypeError, ValueError):
        loaded = None
    return loaded if loaded is not None else (_full_package(), None)


_module, _libgit2_opts = _load()
#: Whether the whole pygit2 package was imported (the fallback) rather than its C core alone.
FULL_PACKAGE = _libgit2_opts is None

if not TYPE_CHECKING:
    Blob = _module.Blob
    Commit = _module.Commit
    GitError = _module.GitError
    InvalidSpecError = _module.InvalidSpecError
    Object = _module.Object
    OdbBackend = _module.OdbBackend
    Oid = _module.Oid
    Reference = _module.Reference
    Repository = _module.Repository
    Signature = _module.Signature
    Tree = _module.Tree
    TreeBuilder = _module.TreeBuilder
hash_bytes: Callable[[bytes], Oid] = _module.hash
GIT_OID_HEXSZ: int = _module.GIT_OID_HEXSZ
GIT_DELTA_ADDED: int = _module.GIT_DELTA_ADDED
GIT_DELTA_DELETED: int = _module.GIT_DELTA_DELETED

__all__ = [
    "FULL_PACKAGE",
    "GIT_DELTA_ADDED",
    "GIT_DELTA_DELETED",
    "GIT_OID_HEXSZ",
    "Blob",
    "Commit",
    "GitError",
    "InvalidSpecError",
    "Object",
    "OdbBackend",
    "Oid",
    "Reference",
    "Repository",
    "Signature",
    "Tree",
    "TreeBuilder",
    "enable_fsync_gitdir",
    "enable_strict_object_creation",
    "find_reference",
    "full_repository",
    "hash_bytes",
    "lookup",
    "open_repository",
]


def open_repository(path: str) -> Repository:
    """The bare repository at path (GitError if there is none)."""
    if FULL_PACKAGE:
        full: Repository = _module.Repository(path, _module.enums.RepositoryOpenFlag.BARE)
        return full
    core: Repository = _module.Repository(_module.init_file_backend(path, REPOSITORY_OPEN_BARE))
    return core


def full_repository(repo: Repository) -> pygit2.Repository:
    """pygit2's Python-level Repository on the same libgit2 handle, for what only the package offers.

    Imports the whole package (~150 ms): only for creating a store, its git config and packing.
    The handle stays repo's: keep repo alive while the result is in use.
    """
    import pygit2

    if isinstance(repo, pygit2.Repository):
        return repo
    from pygit2.ffi import ffi

    handle: Any = ffi.new("git_repository **")
    ffi.buffer(handle)[:] = repo._pointer[:]  # type: ignore[attr-defined]
    return pygit2.Repository._from_c(handle[0], owned=False)


def lookup(repo: Repository, oid: str | Oid) -> Object:
    """The object named by oid (KeyError if absent): pygit2's ``repo[oid]``, which the core lacks."""
    found: Object | None = repo.git_object_lookup_prefix(oid)
    if found is None:
        raise KeyError(oid)
    return found


def find_reference(repo: Repository, name: str) -> Reference | None:
    """The reference called name, or None: pygit2's ``repo.references.get(name)``, which the core lacks."""
    try:
        return repo.lookup_reference(name)
    except (KeyError, InvalidSpecError):
        return None


def enable_strict_object_creation(value: bool) -> None:
    _set_option(OPT_ENABLE_STRICT_OBJECT_CREATION, value, "enable_strict_object_creation")


def enable_fsync_gitdir(value: bool) -> None:
    _set_option(OPT_ENABLE_FSYNC_GITDIR, value, "enable_fsync_gitdir")


def _set_option(option: int, value: bool, setting: str) -> None:
    if _libgit2_opts is None:
        getattr(_module.settings, setting)(value)
        return
    if _libgit2_opts(ctypes.c_int(option), ctypes.c_int(int(value))) != 0:
        raise GitError(f"libgit2 refused option {option}={int(value)}")
