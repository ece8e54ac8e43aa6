"""Plain-Python domain rules. Nothing here imports Dagster, SQLAlchemy or HTTP libraries."""
