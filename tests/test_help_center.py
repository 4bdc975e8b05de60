"""The sample's help center and its ground truth agree with each other and with the sample.

examples/help-center/ is content for the knowledge features (doc gaps, confusing articles,
entity gazetteer); GROUND_TRUTH.json is what benchmarks score against, so it must describe the
files and the conversations exactly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from support import EXAMPLES, REPO

from threadline.analysis.coverage import ThemeConversation, volume_not_falling
from threadline.connectors.knowledge.folder import front_matter

HELP_CENTER = REPO / "examples" / "help-center"
MIN_ARTICLES, MAX_ARTICLES = 15, 30  # the size the knowledge issue asks for
MIN_GAPS = 4  # recurring how-to problems deliberately left without an article
MIN_HOWTO_PROBLEMS = 8  # recurring how-to problems in the sample


def _truth() -> dict:
    return json.loads((HELP_CENTER / "GROUND_TRUTH.json").read_text(encoding="utf-8"))


def _sample() -> list[dict]:
    with EXAMPLES.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_articles_have_a_title_and_sections_and_match_the_ground_truth() -> None:
    files = sorted(HELP_CENTER.glob("*.md"))
    assert MIN_ARTICLES <= len(files) <= MAX_ARTICLES
    truth = _truth()
    assert [a["file"] for a in truth["articles"]] == [f.name for f in files]
    for article, path in zip(truth["articles"], files, strict=True):
        matter = front_matter(path.read_text(encoding="utf-8"))
        assert matter.updated_at is not None and matter.updated_at.date().isoformat() == article["updated"]
        lines = matter.body.splitlines()
        assert lines[0] == f"# {article['title']}"
        assert sum(line.startswith("# ") for line in lines) == 1
        assert any(line.startswith("## ") for line in lines), path.name
        assert article["url"] == f"https://help.tallyboard.io/{path.stem}"


def test_gaps_and_coverage_partition_the_recurring_how_to_problems() -> None:
    truth = _truth()
    sample = _sample()
    howto = {c["labels"]["problem"] for c in sample if c["labels"]["type"] == "how_to"} - {"noise"}
    assert set(truth["howto_problems"]) == howto and len(howto) >= MIN_HOWTO_PROBLEMS
    assert set(truth["covered"]).isdisjoint(truth["gaps"]) and set(truth["covered"]) | set(truth["gaps"]) == howto
    assert len(truth["gaps"]) >= MIN_GAPS
    slugs = {a["slug"] for a in truth["articles"]}
    assert set(truth["covered"].values()) <= slugs and set(truth["confusing_articles"]) <= slugs
    covered_by_articles = {p for a in truth["articles"] for p in a["covers"]}
    assert covered_by_articles == set(truth["covered"])


def test_planted_confusing_conversations_link_the_article_then_the_customer_comes_back() -> None:
    truth = _truth()
    titles = {a["slug"]: a["title"] for a in truth["articles"]}
    planted = [c for c in _sample() if "confusing_article" in c["labels"]]
    assert {c["labels"]["confusing_article"] for c in planted} == set(truth["confusing_articles"])
    for conv in planted:
        slug = conv["labels"]["confusing_article"]
        messages = conv["messages"]
        link_at = next(
            i
            for i, m in enumerate(messages)
            if m["author"] == "agent" and (f"help.tallyboard.io/{slug}" in m["text"] or titles[slug] in m["text"])
        )
        assert any(m["author"] == "customer" for m in messages[link_at + 1 :]), conv["id"]
    for conv in _sample():  # every linked article exists
        if "linked_article" in conv["labels"]:
            assert conv["labels"]["linked_article"] in titles


def test_planted_article_dates_decide_volume_not_falling_by_problem() -> None:
    """The rule on the sample's labelled problems (not its themes): the planted article is flagged, the others not."""
    truth = _truth()
    sample = _sample()
    slug_ids = {a["slug"]: i for i, a in enumerate(truth["articles"])}
    problem_ids = {p: i for i, p in enumerate(truth["howto_problems"])}
    themes: dict[int, list[ThemeConversation]] = {i: [] for i in problem_ids.values()}
    for index, conversation in enumerate(sample):
        problem = conversation["labels"].get("problem")
        if problem in problem_ids:
            created = datetime.fromisoformat(conversation["created_at"])
            themes[problem_ids[problem]].append(ThemeConversation(index, created, index))
    covering = {problem_ids[p]: {slug_ids[slug]} for p, slug in truth["covered"].items()}
    dates = {slug_ids[a["slug"]]: datetime.fromisoformat(a["updated"]).replace(tzinfo=UTC) for a in truth["articles"]}
    run_dates = sorted(datetime.fromisoformat(c["created_at"]) for c in sample)
    flagged = {truth["articles"][f.article_id]["slug"] for f in volume_not_falling(themes, covering, dates, run_dates)}
    assert flagged == set(truth["volume_not_falling"])
    assert set(truth["volume_falling"]).isdisjoint(flagged) and len(truth["volume_falling"]) >= 1
    for slug, planted in {**truth["volume_not_falling"], **truth["volume_falling"]}.items():
        assert (
            truth["covered"][planted["problem"]] == slug
            and dates[slug_ids[slug]].date().isoformat() == planted["updated"]
        )
