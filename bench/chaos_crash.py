"""``python -m bench.chaos_crash [daemon|code_server] [cycles]``: the daemon crash scenario
(:mod:`harness.chaos_crash`, shared with ``tests/acceptance/test_chaos_crash.py``)."""

from harness.chaos_crash import main, run_crash

__all__ = ["main", "run_crash"]

if __name__ == "__main__":
    main()
