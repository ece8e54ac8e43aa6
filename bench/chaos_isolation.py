"""``python -m bench.chaos_isolation [backend...]``: the isolation matrix
(:mod:`harness.chaos_isolation`, shared with ``tests/api/test_isolation.py``)."""

from harness.chaos_isolation import main, run_isolation

__all__ = ["main", "run_isolation"]

if __name__ == "__main__":
    main()
