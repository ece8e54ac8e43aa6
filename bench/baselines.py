"""What the bare baselines share with the scripts that feed them (no definitions built here)."""

from __future__ import annotations

import sqlalchemy as sa

# One row per run the bare sensor should launch (drain baseline), in the store's database.
REQUESTS = sa.Table("bench_requests", sa.MetaData(),
                    sa.Column("id", sa.Integer, primary_key=True))
