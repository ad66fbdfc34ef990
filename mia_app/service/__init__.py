"""Background execution: a SQLite job store and worker processes that run attacks from it.

Data flows one way: dashboard -> store (queued job) -> worker -> engine -> events / run folder -> dashboard.
"""
