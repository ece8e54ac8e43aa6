"""The data lifecycle: retention and pruning (:mod:`orchestrator.lifecycle.prune`)."""
