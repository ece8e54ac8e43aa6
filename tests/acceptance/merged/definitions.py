"""Another project's code location with the orchestrator merged in: its own job and a resource
keyed ``store`` (a name any project may use), beside ours."""

import dagster as dg

from orchestrator import orchestrator_definitions


class TheirStore(dg.ConfigurableResource):  # type: ignore[type-arg]
    bucket: str = "their-bucket"


@dg.op
def their_op(store: TheirStore) -> str:
    return store.bucket


@dg.job
def their_job() -> None:
    their_op()


def their_definitions() -> dg.Definitions:
    return dg.Definitions(jobs=[their_job], resources={"store": TheirStore()})


defs = dg.Definitions.merge(their_definitions(), orchestrator_definitions())
