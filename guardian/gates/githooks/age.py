"""Does a path's content move back?  The hooks ask the same question, the same way, as the watcher.

A git command that replaces protected content is a rollback only when the new content
is *older* than what it replaced: a reset that undoes a revert brings the fix forward
again, a rebase onto a main that fixed the file brings the fix in.  "Older" is about
first appearances, in guardian's snapshots and in the user's git history of the path
(every ref and reflog): ``guardian.query.rollbacks.ContentAges``, which the watcher's
enforcement, ``history`` and ``restore`` use too, so a hook never lets through what
the watcher would then undo, nor refuses what it would let stand.

Loaded only once a hook has a protected path whose content git replaced: the query
layer brings sqlite and the catalog with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from guardian.gates.githooks.context import HookContext
    from guardian.query.rollbacks import ContentAges
    from guardian.query.userrepo import UserRepo


class AgeBook:
    """The content ages of the paths one hook asks about, each read once."""

    def __init__(self, ctx: HookContext) -> None:
        self._ctx = ctx
        self._ages: dict[str, ContentAges] = {}
        self._repo: UserRepo | None = None
        self._located = False

    def ages(self, path: str) -> ContentAges:
        """First appearances of each content of ``path`` (project-relative)."""
        if path not in self._ages:
            from guardian.query.rollbacks import ContentAges

            ages = ContentAges()
            with self._ctx.project().reader() as (_repo, catalog):
                ages.add_versions(catalog.versions_of(path))
            repo = self._user_repo()
            if repo is not None:
                ages.add_git(repo.path_history(path))
            self._ages[path] = ages
        return self._ages[path]

    def older(self, path: str, new: str, old: str) -> bool:
        """Did content ``new`` of ``path`` first appear before content ``old``?  New content is never older."""
        return self.ages(path).older(new, old)

    def _user_repo(self) -> UserRepo | None:
        if not self._located:
            from guardian.query.userrepo import UserRepo

            self._repo, self._located = UserRepo.locate(self._ctx.project().root), True
        return self._repo
