"""The route table: every operation of the HTTP API, declared once (path, handler, models,
status codes, what the document says). The app serves it and the OpenAPI document is generated
from it."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from orchestrator.api import executions, schedules, triggers
from orchestrator.api import responses as r
from orchestrator.api.context import Api
from orchestrator.api.models import (
    BackfillBody,
    BatchBody,
    ExecutionQuery,
    ReplayBody,
    ScheduleBody,
    ScheduleQuery,
    TriggerBody,
)
from orchestrator.api.operations import Call, Operation, Reply
from orchestrator.domain.signatures import (
    SIGNATURE_HEADER,
    STANDARD_HEADERS,
    TIMESTAMP_HEADER,
)


async def healthz(api: Api, call: Call) -> Response:
    await run_in_threadpool(api.store.list_workflows, "-")
    return JSONResponse({"status": "ok"})


_ACCEPTED = {202: Reply(description="accepted: queued, or the execution the idempotency key "
                                    "already names (deduplicated)", model=r.Accepted)}
_TRIGGER_REJECTIONS = {400: "malformed JSON", 404: "unknown workflow",
                       413: "body over 1 MiB", 422: "an invalid field (named)",
                       503: "store unreachable; retry after Retry-After seconds"}
_SCHEDULE = Reply(description="the schedule", model=r.Schedule)
_NO_SCHEDULE = {404: "no such schedule in the key's environment"}

OPERATIONS: list[Operation] = [
    Operation(method="GET", path="/healthz", name="healthz", handler=healthz, public=True,
              summary="Liveness, with a store check",
              replies={200: Reply(description="the server and its store answer",
                                  model=r.Health)},
              rejections={503: "the store is unreachable"}),
    Operation(method="POST", path="/v1/workflows/{name}/trigger", name="trigger",
              handler=triggers.trigger, body=TriggerBody, request_id=True,
              summary="Trigger a workflow",
              description="Queues one execution (202). The same idempotency_key (per "
                          "environment and workflow, within its TTL) answers the same "
                          "execution_id with deduplicated true. X-Request-Id, when sent, "
                          "becomes the execution's request_id.",
              replies=_ACCEPTED, rejections=_TRIGGER_REJECTIONS),
    Operation(method="POST", path="/v1/workflows/{name}/trigger-batch", name="trigger_batch",
              handler=triggers.trigger_batch, body=BatchBody, request_id=True,
              summary="Trigger a workflow for up to 500 items",
              description="All items are accepted or none. An item without its own "
                          "idempotency_key gets the batch idempotency_key plus \":<index>\". "
                          "Batch items bypass the burst gate.",
              replies={202: Reply(description="one acceptance per item, in order",
                                  model=r.AcceptedBatch)},
              rejections=_TRIGGER_REJECTIONS),
    Operation(method="POST", path="/v1/webhooks/{webhook_id}", name="webhook",
              handler=triggers.webhook, public=True, any_body=True, request_id=True,
              summary="A signed webhook delivery (Standard Webhooks)",
              description="Signed as the Standard Webhooks libraries sign: webhook-id, "
                          "webhook-timestamp (unix seconds, within 5 minutes) and "
                          "webhook-signature (space-separated \"v1,<base64 HMAC-SHA256 of "
                          "<webhook-id>.<webhook-timestamp>.<body>>\"; one must match the "
                          "webhook's secret, or during a rotation's grace its previous one). "
                          "A webhook-id accepted before (24 h) answers 409 with the first "
                          f"execution_id. Legacy webhooks (made before Standard Webhooks) "
                          f"sign with {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} (\"sha256=\" + "
                          "hex HMAC-SHA256 of \"<timestamp>.<body>\"). The JSON body (an "
                          "object) becomes the payload; any other JSON value arrives as "
                          "{\"body\": value}.",
              headers=tuple({"name": name, "in": "header", "required": False,
                             "schema": {"type": "string"}}
                            for name in (*STANDARD_HEADERS, TIMESTAMP_HEADER,
                                         SIGNATURE_HEADER)),
              replies=_ACCEPTED,
              rejections={401: "missing, stale or wrong signature", 404: "unknown webhook",
                          409: "replayed delivery (the body names the first execution_id)"}),
    Operation(method="GET", path="/v1/executions", name="executions",
              handler=executions.list_executions, query=ExecutionQuery,
              summary="Executions of the key's environment, most recent first",
              replies={200: Reply(description="without block entries",
                                  model=r.ExecutionList)}),
    Operation(method="GET", path="/v1/executions/{execution_id}", name="execution",
              handler=executions.get_execution,
              summary="One execution (buffered ones included, as queued)",
              replies={200: Reply(description="the execution with its correlation, status, "
                                              "outcome and blocks", model=r.Execution)},
              rejections={404: "no such execution in the key's environment"}),
    Operation(method="POST", path="/v1/executions/{execution_id}/cancel",
              name="execution_cancel", handler=executions.cancel_execution,
              summary="Cancel an execution (no alert)",
              replies={200: Reply(description="the execution now: `cancelled` when it had not "
                                              "started (no run), or `running` with "
                                              "`cancel_requested_at` while its run is stopped",
                                  model=r.Execution)},
              rejections={404: "no such execution in the key's environment",
                          409: "the execution has already ended"}),
    Operation(method="POST", path="/v1/executions/{execution_id}/replay",
              name="execution_replay", handler=executions.replay_execution, body=ReplayBody,
              request_id=True, summary="Replay an execution: a new one of the same workflow",
              description="Queues a new execution (202) of the original's workflow in its "
                          "environment, source `replay`, new correlation ids, `replayed_from` "
                          "the original; the original's payload unless `payload` is given; the "
                          "latest workflow version, or with `same_version` the one the "
                          "original ran. The original may be finished or not. X-Request-Id, "
                          "when sent, becomes the new execution's request_id.",
              replies={202: Reply(description="the new execution, queued",
                                  model=r.Replayed)},
              rejections={404: "no such execution in the key's environment (or its workflow "
                               "was deleted)",
                          409: "same_version for an execution that has not run yet",
                          422: "an invalid field (named)",
                          503: "store unreachable; retry after Retry-After seconds"}),
    Operation(method="GET", path="/v1/schedules", name="schedules",
              handler=schedules.list_schedules, query=ScheduleQuery,
              summary="Schedules of the key's environment",
              replies={200: Reply(description="oldest first", model=r.ScheduleList)}),
    Operation(method="POST", path="/v1/schedules", name="schedule_create",
              handler=schedules.create_schedule, body=ScheduleBody,
              summary="Create a schedule (or update the one with the same key)",
              replies={201: Reply(description="created", model=r.ScheduleCreated),
                       200: Reply(description="updated (same key)", model=r.ScheduleCreated)},
              rejections={404: "unknown workflow",
                          422: "invalid cron, timezone, run_at in the past, ... (field named)"}),
    Operation(method="GET", path="/v1/schedules/{schedule_id}", name="schedule",
              handler=schedules.get_schedule,
              summary="One schedule with its next five fire times (upcoming)",
              replies={200: _SCHEDULE}, rejections=_NO_SCHEDULE),
    Operation(method="DELETE", path="/v1/schedules/{schedule_id}", name="schedule_delete",
              handler=schedules.delete_schedule,
              summary="Delete a schedule (its executions stay in the log)",
              replies={204: Reply(description="deleted")}, rejections=_NO_SCHEDULE),
    Operation(method="POST", path="/v1/schedules/{schedule_id}/pause", name="schedule_pause",
              handler=schedules.pause_schedule, summary="Pause a schedule",
              replies={200: Reply(description="the paused schedule", model=r.Schedule)},
              rejections=_NO_SCHEDULE),
    Operation(method="POST", path="/v1/schedules/{schedule_id}/resume",
              name="schedule_resume", handler=schedules.resume_schedule,
              summary="Resume a schedule from now on (missed occurrences are not replayed)",
              replies={200: Reply(description="the resumed schedule", model=r.Schedule)},
              rejections={**_NO_SCHEDULE, 422: "a one-time schedule whose instant has "
                                                "passed"}),
    Operation(method="POST", path="/v1/schedules/{schedule_id}/backfill",
              name="schedule_backfill", handler=schedules.backfill_schedule, body=BackfillBody,
              summary="Backfill a time range: one execution per occurrence (source backfill)",
              description="Occurrences in [start, end] in the schedule's timezone and DST "
                          "rules, before its next_run_at, at most 10,000. One execution per "
                          "occurrence, ever: an occurrence that has one (from the schedule or "
                          "an earlier backfill) gets nothing new. They go through the queue "
                          "(batched, fair across environments) with the schedule's priority.",
              replies={202: Reply(description="accepted: counts of created, existing and "
                                              "skipped occurrences", model=r.Backfill)},
              rejections={**_NO_SCHEDULE, 422: "an invalid or future range, over 10,000 "
                                                "occurrences, a one-time schedule (field "
                                                "named)"}),
    Operation(method="GET", path="/v1/schedules/{schedule_id}/backfills",
              name="schedule_backfills", handler=schedules.list_backfills,
              summary="The schedule's backfills, newest first, with their progress",
              replies={200: Reply(description="each with its executions by status",
                                  model=r.BackfillList)}, rejections=_NO_SCHEDULE),
    Operation(method="GET", path="/v1/schedules/{schedule_id}/backfills/{backfill_id}",
              name="schedule_backfill_show", handler=schedules.get_backfill,
              summary="One backfill with its executions counted by status",
              replies={200: Reply(description="the backfill", model=r.Backfill)},
              rejections={404: "no such schedule or backfill in the key's environment"}),
]
