"""``python -m bench.chaos_fuzz [examples] [backend...]``: the API fuzz (:mod:`harness.chaos_fuzz`,
shared with ``tests/api/test_fuzz.py``)."""

from harness.chaos_fuzz import main, run_fuzz

__all__ = ["main", "run_fuzz"]

if __name__ == "__main__":
    main()
