"""``heavy_imports``: the collector is paused inside, running again after (whatever the block
did), and what the block left alive is frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from orchestrator.startup import heavy_imports


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # this test process's objects back in the collector's sight
    gc.enable()


def test_paused_inside_running_after_and_what_it_made_frozen() -> None:
    before = gc.get_freeze_count()
    with heavy_imports():
        assert not gc.isenabled()
        kept = [[i] for i in range(1000)]  # what an import leaves alive
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + len(kept)


def test_running_again_after_a_failed_import() -> None:
    with pytest.raises(ImportError), heavy_imports():
        import orchestrator.no_such_module  # type: ignore[import-not-found]  # noqa: F401
    assert gc.isenabled()


def test_a_caller_that_paused_the_collector_resumes_it_itself() -> None:
    gc.disable()
    with heavy_imports():
        assert not gc.isenabled()
    assert not gc.isenabled()
