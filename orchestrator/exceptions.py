"""Exceptions raised by orchestrator.

Hierarchy::

    OrchestratorError                 base; carries ``classification`` (an ``Outcome``) and
                                      ``transient`` (whether trying again may succeed)
    ├── InvalidInput                  bad input: one or more ``Problem`` (field + message)
    ├── NotFound                      a named object does not exist (kind + key)
    ├── Conflict                      refused by stored state (a replayed webhook delivery)
    ├── StoreError                    the store failed (unreachable, driver error); a pipeline fault
    ├── DagsterStorageError           Dagster's storage (DAGSTER_HOME) could not be created
    └── WorkflowError                 a user/workflow error raised inside the execution core

Messages say what was wrong and what to do; they never carry connection strings or stack traces.
``orchestrator.domain.failures`` reads these attributes: ``classify(exc)``, ``retryable(exc)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.domain.records import Outcome


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One thing wrong with an input: the field (dotted path) and what is allowed."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class OrchestratorError(Exception):
    """Base of every error this package raises on purpose."""

    classification: Outcome = Outcome.PIPELINE_FAULT  # who is to blame
    transient: bool = False  # the same call may succeed if made again


class InvalidInput(OrchestratorError):
    """Input rejected before anything was written. Lists every problem found."""

    classification = Outcome.USER_ERROR

    def __init__(self, problems: list[Problem] | Problem, *, subject: str = "input") -> None:
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        self.subject = subject
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid {subject} ({len(self.problems)} problem(s)):\n{lines}")


class NotFound(OrchestratorError):
    """A workflow, schedule or execution that does not exist (or is not visible)."""

    classification = Outcome.USER_ERROR

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found")


class Conflict(OrchestratorError):
    """The request conflicts with what is stored (e.g. a webhook delivery seen before);
    ``execution_id`` names the execution the first one made, when there is one."""

    classification = Outcome.USER_ERROR

    def __init__(self, message: str, *, execution_id: str | None = None) -> None:
        self.execution_id = execution_id
        super().__init__(message)


class StoreError(OrchestratorError):
    """The store could not complete an operation. Raised by the store only; the message is safe
    to show (no URL, no driver text)."""

    classification = Outcome.PIPELINE_FAULT

    def __init__(self, operation: str, *, transient: bool = True) -> None:
        self.operation = operation
        self.transient = transient
        super().__init__(
            f"the orchestrator store could not {operation}"
            + (" (database unreachable or busy; retry later)" if transient else "")
        )


class DagsterStorageError(OrchestratorError):
    """Dagster's own storage (``DAGSTER_HOME``) could not be opened or created; a pipeline fault.
    The message names the error's type only (Dagster's text may carry a connection string)."""

    classification = Outcome.PIPELINE_FAULT

    def __init__(self, error: str) -> None:
        super().__init__(f"Dagster's storage in DAGSTER_HOME could not be created ({error}); "
                         "check DAGSTER_HOME/dagster.yaml, rerun with -v for details")


class WorkflowError(OrchestratorError):
    """A user/workflow error inside the execution core (bad reference, missing field, ...)."""

    classification = Outcome.USER_ERROR

    def __init__(self, message: str, *, block_id: str | None = None) -> None:
        self.block_id = block_id
        super().__init__(message)
