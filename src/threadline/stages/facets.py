"""Stage `facets`: LLM facets per conversation, cached in `analyses`, failures reported per item.

The stage is a function from stored rows to stored rows like every other stage: it reads
the batch's messages, looks up cached analyses by the content-addressed key
(`facet_input_hash`: prompt version + model + conversation text), calls the model only
for the misses, and inserts results with ON CONFLICT DO NOTHING (idempotent). Items that
exhausted their bounded attempts come back as `failed` for the caller to dead-letter in
the same transaction; items not started because the run's budget was reached come back
as `skipped_budget`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from threadline.ai.llm.batch import BatchReport, FailedItem, analyze_batch
from threadline.ai.llm.client import LLMClient
from threadline.ai.llm.cost import CallUsage, cost_counters
from threadline.ai.llm.facets import STAGE as NAME
from threadline.ai.llm.facets import ConversationInput, MessageInput, facet_input_hash
from threadline.ai.llm.prompts import FACETS_PROMPT_VERSION
from threadline.ai.llm.runtime import LLMRuntime
from threadline.config import LLMSettings
from threadline.db.analyses import cached_conversation_ids, store_analyses
from threadline.db.models import Contact, Conversation, Message
from threadline.engine.budget import RunSpendGuard, run_spend, spend_guard
from threadline.engine.llm import llm_runtime
from threadline.engine.stage import BatchOutcome, PerConversationStage, StageContext

__all__ = ["STAGE", "FacetStageResult", "facet_conversations", "load_inputs"]

BUDGET_HINT = "raise THREADLINE_LLM_RUN_BUDGET and resume"  # what a person does when the budget stops a run


@dataclass
class FacetStageResult:
    done: list[int] = field(default_factory=list)
    computed: int = 0
    reused: int = 0
    skipped: dict[int, str] = field(default_factory=dict)
    failed: list[FailedItem] = field(default_factory=list)
    skipped_budget: list[int] = field(default_factory=list)
    stopped_reason: str | None = None
    usages: list[CallUsage] = field(default_factory=list)

    @property
    def input_tokens(self) -> int:
        return sum(u.input_tokens for u in self.usages)

    @property
    def output_tokens(self) -> int:
        return sum(u.output_tokens for u in self.usages)


def load_inputs(session: Session, conversation_ids: Sequence[int]) -> dict[int, ConversationInput]:
    """Conversation inputs (messages in order, the contact's name to scrub) for a batch."""
    messages: dict[int, list[MessageInput]] = defaultdict(list)
    rows = session.execute(
        select(Message.conversation_id, Message.id, Message.author_role, Message.text)
        .where(Message.conversation_id.in_(list(conversation_ids)))
        .order_by(Message.conversation_id, Message.position)
    )
    for conversation_id, message_id, role, text in rows:
        messages[conversation_id].append(MessageInput(str(message_id), role, text))
    names = dict(
        session.execute(
            select(Conversation.id, Contact.name)
            .join(Contact, Contact.id == Conversation.contact_id)
            .where(Conversation.id.in_(list(conversation_ids)), Contact.name.is_not(None))
        ).all()
    )
    return {
        cid: ConversationInput(str(cid), tuple(parts), known_names=(str(names[cid]),) if names.get(cid) else ())
        for cid, parts in messages.items()
    }


def facet_conversations(
    session: Session,
    conversation_ids: Sequence[int],
    runtime: LLMRuntime,
    *,
    budget_left: float | None = None,
    guard: RunSpendGuard | None = None,
) -> FacetStageResult:
    """Facets for a batch; see the module docstring for what ends where."""
    settings: LLMSettings = runtime.settings
    model = settings.models.facets
    result = FacetStageResult()
    inputs = load_inputs(session, conversation_ids)
    for cid in conversation_ids:
        if cid not in inputs or not any(m.role == "customer" for m in inputs[cid].messages):
            result.skipped[cid] = "no customer messages"
    wanted = {cid: inputs[cid] for cid in conversation_ids if cid not in result.skipped}
    keys = {cid: facet_input_hash(conv, model) for cid, conv in wanted.items()}
    cached = cached_conversation_ids(session, stage=NAME, model=model, version=FACETS_PROMPT_VERSION, keys=keys)
    result.reused = len(cached)
    misses = [wanted[cid] for cid in wanted if cid not in cached]
    if misses:
        batch_settings = settings if budget_left is None else settings.model_copy(update={"run_budget": budget_left})

        async def job(client: LLMClient) -> BatchReport:
            return await analyze_batch(client, misses)

        report = runtime.run(job, batch_settings, spend_guard=guard)
        rows = []
        for item in report.done:
            record = item.analysis_record()
            usage = record.pop("usage")
            record["conversation_id"] = int(record["conversation_id"])
            record["input_tokens"] = sum(u["input_tokens"] for u in usage)
            record["output_tokens"] = sum(u["output_tokens"] for u in usage)
            rows.append(record)
        if rows:
            store_analyses(session, rows)
        result.computed = len(rows)
        result.failed = list(report.failed)
        result.skipped_budget = [int(cid) for cid in report.skipped]
        result.stopped_reason = report.stopped_reason
        result.usages = report.usages
    failed_ids = {int(f.conversation_id) for f in result.failed}
    result.done = [cid for cid in wanted if cid not in failed_ids and cid not in set(result.skipped_budget)]
    return result


def run(context: StageContext, ids: Sequence[int]) -> BatchOutcome:
    """Facets for one batch, within what is left of the run's LLM budget."""
    session = context.session
    runtime = llm_runtime(session.get_bind())  # type: ignore[arg-type]
    if runtime is None:
        return BatchOutcome(skipped={cid: "no LLM configured" for cid in ids})
    budget = runtime.settings.run_budget
    budget_left = None if budget is None else budget - run_spend(session, context.run_id)
    if budget_left is not None and budget_left <= 0:
        return BatchOutcome(stop_reason=f"LLM budget of {budget} reached; {BUDGET_HINT}")
    guard = spend_guard(session.get_bind(), context.run_id, budget)  # type: ignore[arg-type]
    result = facet_conversations(session, ids, runtime, budget_left=budget_left, guard=guard)
    return BatchOutcome(
        done=result.done,
        skipped=dict(result.skipped),
        computed=result.computed,
        reused=result.reused,
        failed={int(f.conversation_id): (f.error_class, f.message, f.attempts) for f in result.failed},
        extra_counters=cost_counters(result.usages, runtime.settings.prices),
        stop_reason=(f"{result.stopped_reason}; {BUDGET_HINT}" if result.stopped_reason else None),
    )


STAGE = PerConversationStage(
    name=NAME, version=FACETS_PROMPT_VERSION, position=20, run=run, local=False, requires_llm=True
)
