"""Read models of the API and dashboard (plain sync SQLAlchemy; called from the threadpool)."""
