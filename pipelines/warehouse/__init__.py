"""The warehouse side: where a run writes, what it reads back, the views, the privacy records.

Nothing here knows the API. `targets.py` (where a run writes, and its locks), `snapshot.py`
(the DuckDB file's private copy), `access.py` (every SQL read and write outside dlt's loads),
`reading.py` (the one way to open a warehouse for reading), `views.py` with `sql/` (the
views), `dependants.py` (what others built on ours), `privacy.py` (the policy and erasures the
warehouse records), `query.py` (`sql`'s one query).
"""
