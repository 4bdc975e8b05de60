"""A tiny help center (2 articles) and conversations about three how-to problems, for coverage tests.

- recurring invoices: answered by an article, linked by URL, the customer thanks: covered.
- Slack notifications: no article answers it: a documentation gap.
- importing from Trello: answered by an article that is linked by its quoted title, after which
  the customer is still stuck: covered, and a confusing article.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

ARTICLES = {
    "recurring-invoices.md": """# Set up recurring invoices

Recurring invoices are sent automatically on a schedule, for retainer clients.

## Make an invoice recurring
Open the invoice, choose More, then Make recurring. Pick the interval (weekly, monthly) and the first send date.
The invoice is then sent automatically every month to the client.
""",
    "import-from-trello.md": """# Import projects from Trello

Bring your Trello boards into Tallyboard as projects.

## Import a Trello board
Export the board from Trello as JSON, open the project list, choose Import, and upload the file.
Each Trello list becomes a task list and each card becomes a task.
""",
}
BASE_URL = "https://help.tallyboard.test/"

RECURRING = [
    "How do I set up an invoice that repeats every month for a retainer client?",
    "How can I make an invoice recurring so it is sent automatically each month?",
    "Is there a way to schedule a monthly recurring invoice for my clients?",
    "How do I get an invoice to go out automatically every month?",
    "Where do I set an invoice to repeat monthly for a retainer?",
    "How do I create recurring invoices that send themselves every month?",
]
SLACK = [
    "How do I get Slack notifications when a task is assigned to me?",
    "How can I connect Slack so our channel is notified about new tasks?",
    "Is there a way to post task updates into a Slack channel?",
    "How do I set up Slack alerts for comments on my tasks?",
    "How can I send Tallyboard task notifications to Slack?",
    "Where do I turn on Slack notifications for task changes?",
]
TRELLO = [
    "How do I import my Trello boards into Tallyboard?",
    "How can I move our projects over from Trello?",
    "Is there a way to import a Trello board as a project?",
    "How do I bring my Trello cards into Tallyboard?",
    "How can I migrate all our Trello boards to Tallyboard projects?",
    "Where do I import projects from Trello?",
]
PLANTED_DOMAIN = "fjord-analytics.test"
STILL_STUCK = (
    "I followed the guide but it keeps saying unsupported file, I still can't import the board. "
    "Call me on +44 20 7946 0958."
)


def write_help_center(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, body in ARTICLES.items():
        (root / name).write_text(body)
    return root


def _conversation(index: int, problem: str, question: str, replies: list[tuple[str, str]]) -> dict:
    start = datetime(2026, 10, 1, tzinfo=UTC) + timedelta(hours=index)
    messages = [{"author": "customer", "text": question, "created_at": start.isoformat()}]
    for offset, (author, body) in enumerate(replies, start=1):
        messages.append({"author": author, "text": body, "created_at": (start + timedelta(minutes=offset)).isoformat()})
    return {
        "id": f"{problem}-{index}",
        "created_at": start.isoformat(),
        "customer": {"id": f"u-{problem}-{index}", "email": f"user{index}@example.com"},
        "messages": messages,
        "labels": {"problem": problem},
    }


def write_conversations(path: Path) -> Path:
    rows = []
    for i, question in enumerate(RECURRING):
        link = "Here's the guide: https://help.tallyboard.test/recurring-invoices"
        rows.append(_conversation(i, "recurring", question, [("agent", link), ("customer", "Found it, thanks!")]))
    for i, question in enumerate(SLACK):
        asked = f"{question} Reply to ops{i}@{PLANTED_DOMAIN} please."  # personal data every view must mask
        rows.append(_conversation(10 + i, "slack", asked, [("agent", "Let me check with the team.")]))
    for i, question in enumerate(TRELLO):
        link = 'Have a look at the article "Import projects from Trello", it explains every step.'
        rows.append(_conversation(20 + i, "trello", question, [("agent", link), ("customer", STILL_STUCK)]))
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path
