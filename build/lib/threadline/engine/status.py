"""Run and sync statuses: one vocabulary for the engine, the CLI, the API and the dashboard.

Runs: queued -> running -> (stopping -> stopped) | succeeded | failed. Questions about a
status are named predicates on the enum, so nobody keeps a tuple of "active" statuses of
their own. Sync jobs have their own enum (`cancelled` is theirs: a run is stopped, not
cancelled).
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """The six stored run statuses (`runs.status`)."""

    QUEUED = "queued"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def may_start_batches(self) -> bool:
        """Workers may start new work for the run (claim items, start phases)."""
        return self in (RunStatus.QUEUED, RunStatus.RUNNING)

    @property
    def can_be_stopped(self) -> bool:
        """A stop request is accepted (a stopping run accepts it as a no-op)."""
        return self in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.STOPPING)

    @property
    def is_in_progress(self) -> bool:
        """Work is queued, running or finishing (what "the current run" means on the overview)."""
        return self in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.STOPPING)

    @property
    def is_final(self) -> bool:
        """Nothing more happens unless a person resumes or retries (succeeded, failed, stopped)."""
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.STOPPED)

    @property
    def is_finished(self) -> bool:
        """Every phase ran to its end (succeeded or failed); a dead-letter retry reopens it."""
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED)

    @property
    def can_be_resumed(self) -> bool:
        return self in (RunStatus.STOPPED, RunStatus.FAILED)

    @classmethod
    def where(cls, predicate: str) -> tuple[str, ...]:
        """The stored values for which `predicate` (a property name above) holds, for SQL filters."""
        return tuple(status.value for status in cls if getattr(status, predicate))


class SyncStatus(StrEnum):
    """Status of a connector sync job, as the API shows it."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (SyncStatus.SUCCEEDED, SyncStatus.FAILED, SyncStatus.CANCELLED)
