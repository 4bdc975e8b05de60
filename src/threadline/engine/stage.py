"""The stage contract: what the engine needs to know to run a stage, and the stage registry.

A stage is one object (`PerConversationStage` or `WholeRunStage`) exported by one module of
`threadline.stages` (or of a plugin) and registered under the entry-point group
`threadline.stages`. The engine knows stages only through this contract: per-conversation
stages turn a batch of conversation ids into a `BatchOutcome` (idempotently: running a batch
twice stores its results once); whole-run stages run once per run, after every
per-conversation stage, and return their counters. `position` orders a run's phases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any, Protocol

from sqlalchemy.orm import Session

from threadline.registry import Registry

STAGES_GROUP = "threadline.stages"


@dataclass(frozen=True)
class StageContext:
    """What a stage works on: the run's transaction, its id and its parameters."""

    session: Session
    run_id: int
    params: Mapping[str, Any]


@dataclass
class BatchOutcome:
    """What a per-conversation stage did with one batch; the run's counters are summed from these."""

    done: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)  # conversation id -> reason
    computed: int = 0
    reused: int = 0
    failed: dict[int, tuple[str, str, int]] = field(default_factory=dict)  # id -> (error class, message, attempts)
    extra_counters: dict[str, float] = field(default_factory=dict)  # e.g. tokens and cost of LLM calls
    stop_reason: str | None = None  # set when the run must stop (its LLM budget is spent)


@dataclass(frozen=True)
class PerConversationStage:
    """A stage run in batches of conversations, in any number of workers at once."""

    name: str
    version: str  # algorithm or prompt version: part of every cached result's key
    position: int  # order among a run's phases (lower first)
    run: Callable[[StageContext, Sequence[int]], BatchOutcome]
    local: bool = True  # calls no paid provider: jobs are sized by characters of text, not by count
    requires_llm: bool = False  # part of the product's phases only when an LLM endpoint is configured
    default: bool = True  # part of the product's phases (False: only runs that name it, e.g. tests)
    # Parameters the stage fixes when a run is created (merged into the run's params; e.g. the
    # embedding backend), so every job of the run uses the same choice whichever worker runs it.
    plan: Callable[[], dict[str, Any]] | None = None
    # The procrastinate queue of this stage's batch jobs for a run with these params; None: the
    # default queue. Lets a stage send a run's batches only to workers able to do them.
    queue: Callable[[Mapping[str, Any]], str | None] | None = None
    # The extra queues a worker of this process serves for this stage, decided at worker start
    # (it may load a model to find out); a worker always serves the default queue too.
    worker_queues: Callable[[], Sequence[str]] | None = None


@dataclass(frozen=True)
class WholeRunStage:
    """A stage run once per run over all of its conversations (themes, stories)."""

    name: str
    version: str
    position: int
    run: Callable[[StageContext], dict[str, Any]]
    default: bool = True
    requires_llm: bool = False
    # The procrastinate queue of the stage's job for a run with these params; None: the default
    # queue. A stage that embeds text (naming, evidence) follows the run's embedding backend, so
    # only a worker providing that backend runs it and its vectors match the run's.
    queue: Callable[[Mapping[str, Any]], str | None] | None = None


Stage = PerConversationStage | WholeRunStage

STAGES: Registry[Stage] = Registry(
    STAGES_GROUP,
    name_of=lambda stage: stage.name,
    check=lambda obj: isinstance(obj, PerConversationStage | WholeRunStage),
)


def get_stage(name: str) -> Stage:
    """The registered stage called `name` (raises `threadline.registry.UnknownPlugin`)."""
    return STAGES.get(name)


def stage_queue(name: str, params: Mapping[str, Any] | None) -> str | None:
    """The queue of stage `name`'s jobs (its batches, or its one whole-run job) for a run with `params`.

    None: the default queue.
    """
    stage = STAGES.get(name) if name in STAGES else None
    if stage is not None and stage.queue is not None:
        return stage.queue(params or {})
    return None


def planned_params(phases: Sequence[str]) -> dict[str, Any]:
    """What the run's stages fix when it is created (`PerConversationStage.plan`), in phase order."""
    params: dict[str, Any] = {}
    for name in phases:
        stage = STAGES.get(name)
        if isinstance(stage, PerConversationStage) and stage.plan is not None:
            params.update(stage.plan())
    return params


def extra_worker_queues() -> list[str]:
    """The stage queues this process's worker serves besides the default one (`worker_queues`)."""
    queues: list[str] = []
    for stage in STAGES:
        if isinstance(stage, PerConversationStage) and stage.worker_queues is not None:
            queues.extend(q for q in stage.worker_queues() if q not in queues)
    return queues


def is_per_conversation(name: str) -> bool:
    return name in STAGES and isinstance(STAGES.get(name), PerConversationStage)


def product_phases(*, llm_configured: bool) -> tuple[str, ...]:
    """The phases a run executes by default, in order: the registered default stages.

    Stages that need an LLM join only when an endpoint is configured.
    """
    stages = [s for s in STAGES if s.default and (llm_configured or not s.requires_llm)]
    return tuple(s.name for s in sorted(stages, key=lambda s: (s.position, s.name)))


ITEM_HOOKS_GROUP = "threadline.item_hooks"


class ItemHook(Protocol):
    """Called before a per-conversation stage processes an item; may raise a `TransientError` or
    `PermanentError` for it (a drill or a test's fault injection; the product registers none)."""

    def check(self, stage: str, conversation_id: int, attempt: int) -> None: ...


@lru_cache(maxsize=1)
def _item_hook_factories() -> tuple[Callable[[], ItemHook | None], ...]:
    return tuple(point.load() for point in sorted(entry_points(group=ITEM_HOOKS_GROUP), key=lambda p: p.name))


def item_hooks() -> list[ItemHook]:
    """The active item hooks, asked afresh for each batch (a hook may read its configuration each time)."""
    hooks = (factory() for factory in _item_hook_factories())
    return [hook for hook in hooks if hook is not None]
