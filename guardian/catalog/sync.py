"""Catch the catalog up with the store's history, and log snapshots a crash kept from the event log."""

from __future__ import annotations

from typing import TYPE_CHECKING

from guardian.store.trailers import original_ids

if TYPE_CHECKING:
    from guardian.catalog.db import Catalog
    from guardian.events import EventLog
    from guardian.store.repo import ShadowRepo


def sync_catalog(events: EventLog, repo: ShadowRepo, catalog: Catalog) -> list[str]:
    """Catch the catalog up with git and log snapshots whose event a crash swallowed."""
    recovered = catalog.sync(repo)
    if recovered:
        logged = {e.snapshot for e in events.read() if e.event == "snapshot"}
        # A snapshot rewritten by gc was logged under its original id (Guardian-Original trailer).
        missing = [sid for sid in recovered if sid not in logged and not original_ids(repo.commit_record(sid).message)]
        for sid in missing:
            row = catalog.snapshot(sid)
            events.append(
                "snapshot",
                [v.path for v in catalog.versions_in(row.seq)][:1000] if row else [],
                sid,
                row.trigger if row else None,
                {"recovered": True},
            )
    return recovered
