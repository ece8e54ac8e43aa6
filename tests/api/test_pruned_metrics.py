"""``/metrics`` counts the rows retention pruning removed, per kind, whichever process pruned
them (the totals live in the store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.domain.correlation import Correlation, Source
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.lifecycle.prune import prune
from orchestrator.store import Store
from tests.api.conftest import scrape


def test_metrics_count_pruned_rows(serve, store: Store, make_workflow) -> None:
    make_workflow()
    old = datetime.now(UTC) - timedelta(days=40)
    for i in range(3):
        store.create_execution(Correlation(execution_id=f"e{i}", request_id="r",
                                           source=Source.API, workflow="digest",
                                           environment="default"), old, enqueue=True)
        store.finish_execution(f"e{i}", status=ExecutionStatus.SUCCESS,
                               outcome=Outcome.SUCCESS, finalized_by="core", now=old)
    url = serve().url
    assert "orchestrator_pruned_rows_total{" not in scrape(url)
    prune(store, now=datetime.now(UTC), default_retention=timedelta(days=30))
    text = scrape(url)
    assert 'orchestrator_pruned_rows_total{kind="executions"} 3.0' in text
    assert 'orchestrator_pruned_rows_total{kind="queue"} 3.0' in text
