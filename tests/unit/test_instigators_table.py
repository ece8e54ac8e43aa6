"""Dagster's schedule storage asks the catalog for its ``instigators`` table on every read and
write of a sensor's state; our storages (``LockedSqliteStorage``, ``PooledPostgresStorage``)
remember the table once it is found, and keep asking until then."""

from __future__ import annotations

from orchestrator.dagster.storage import remember_instigators_table


class _Storage:
    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.asked = 0

    def has_instigators_table(self) -> bool:
        self.asked += 1
        return self.answers.pop(0)


def test_the_table_once_found_is_not_asked_for_again() -> None:
    storage = _Storage([True])
    remember_instigators_table(storage)
    assert [storage.has_instigators_table() for _ in range(5)] == [True] * 5
    assert storage.asked == 1


def test_a_missing_table_is_asked_for_until_a_migration_creates_it() -> None:
    storage = _Storage([False, False, True])
    remember_instigators_table(storage)
    assert [storage.has_instigators_table() for _ in range(5)] == [False, False, True, True,
                                                                  True]
    assert storage.asked == 3
