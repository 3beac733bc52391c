"""Shared bits of the mlcore commands: store resolution and a tqdm progress callback."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import CommandError
from tqdm import tqdm

from mlcore.ml.data import open_store


def require_migrated_database(*, doing: str) -> None:
    """Stop before a long run whose end writes to the database (registering a version) when
    that database is not migrated: a fresh checkout's ``manage.py train_model`` otherwise
    trains for minutes and then fails on a missing table."""
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.executor import MigrationExecutor

    connection = connections[DEFAULT_DB_ALIAS]
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        raise CommandError(f"cannot read the database {connection.settings_dict.get('NAME')!s} before "
                           f"{doing}: {exc}") from None
    if pending:
        raise CommandError(f"the database {connection.settings_dict.get('NAME')!s} has {len(pending)} unapplied "
                           f"migrations: run `python manage.py migrate` before {doing} "
                           "(`make starter-model` and `make run` do)")


def open_store_or_fail(uri: str | None):
    try:
        return open_store(uri or settings.DATASET_STORE_URI)
    except (ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None


class TqdmProgress:
    """``progress(stage, done, total)`` callback drawn as one tqdm bar per stage on stderr."""

    def __init__(self, desc: str):
        self._tqdm = tqdm
        self.bar = None
        self.stage = None
        self.desc = desc

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.bar is None or stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = self._tqdm(total=total, desc=f"{self.desc}: {stage}", unit="img")
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
