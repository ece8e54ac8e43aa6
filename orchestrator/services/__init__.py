"""Services: the rules the CLI and the HTTP API share, each written once, on the store's
interfaces (:mod:`orchestrator.store.interfaces`), so they run on any backend, the in-memory
one included. The CLI and the API parse input, call a service and render what it returns.

=======================================  =======================================================
module                                   concept
=======================================  =======================================================
:mod:`orchestrator.services.triggers`    admission of triggers (API calls, webhooks, the CLI's
                                         ``trigger``, child triggers): correlation, idempotency,
                                         debounce, burst gate
:mod:`orchestrator.services.schedules`   create, show, pause, resume, delete, trigger now; the
                                         schedule view (``upcoming``)
:mod:`orchestrator.services.executions`  listing (status filter) and reading one execution, from
                                         the log or the burst buffer
=======================================  =======================================================

The sensors' side (dispatching due schedules and queued triggers, the API's group commit) is
:mod:`orchestrator.triggers`.
"""
