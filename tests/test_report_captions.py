"""The HTML report's captions and front page render without docutils system messages.

Snakemake appends link targets to every caption before rendering it with docutils: one per
report category, one per result file, and its own ``Workflow`` and ``Statistics`` panels. A
category named like one of those makes a duplicate target, which docutils reports inside the
rendered page ("System Message: WARNING/2 ... Duplicate explicit target name").
"""

from __future__ import annotations

import inspect
import io
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pytest
import snakemake.report
from docutils.core import publish_parts

from pipeline import REPO

REPORT_ITEM = re.compile(
    r'report\(\s*"(?P<path>[^"]+)",\s*caption="(?P<caption>[^"]+)",\s*category="(?P<cat>[^"]+)"'
)


@dataclass(frozen=True, order=True)
class Category:
    name: str


@dataclass(frozen=True)
class Result:
    target: str
    path: str


def _report_items() -> list[dict]:
    items = []
    for rules in sorted((REPO / "rules").glob("*.smk")):
        for m in REPORT_ITEM.finditer(rules.read_text()):
            caption = (rules.parent / m["caption"]).resolve()
            items.append({"path": m["path"], "caption": caption, "category": m["cat"]})
    return items


def _snakemake_links_template() -> str:
    """The link targets Snakemake appends to captions, taken from its own source."""
    source = inspect.getsource(snakemake.report)
    found = re.search(r'rst_links = textwrap\.dedent\(\s*"""(.*?)"""', source, re.S)
    assert found, "snakemake.report changed how it builds caption links; update this test"
    return textwrap.dedent(found.group(1))


def _render(text: str, items: list[dict]) -> tuple[str, str]:
    """(html, docutils warnings) of ``text`` plus the link targets Snakemake adds for the
    report ``items``, rendered the way Snakemake renders captions."""
    categories = {Category(item["category"]): [] for item in items}
    files = [Result(Path(i["path"]).name, i["path"]) for i in items]
    rst = jinja2.Environment().from_string(text + _snakemake_links_template())
    warnings = io.StringIO()
    parts = publish_parts(
        rst.render(categories=categories, files=files, snakemake=None),
        writer="html",
        settings_overrides={"warning_stream": warnings},
    )
    return parts["html_body"], warnings.getvalue()


def test_report_lists_every_result_with_a_caption():
    items = _report_items()
    assert {Path(i["path"]).name for i in items} >= {"curves.png", "performance_profile.png"}
    assert all(i["caption"].is_file() for i in items)


@pytest.mark.parametrize(
    "caption",
    sorted({p.name for p in (REPO / "workflow/report").glob("*.rst")}),
)
def test_caption_renders_without_system_messages(caption):
    html, warnings = _render((REPO / "workflow/report" / caption).read_text(), _report_items())
    assert warnings == "" and "system-message" not in html, warnings or html


def test_a_category_named_like_a_snakemake_panel_would_be_caught():
    """The check itself works: the old 'Statistics' category gave the front-page warning."""
    items = [{"path": "results/aggregate.csv", "category": "Statistics"}]
    html, warnings = _render("Front page.", items)
    assert "Duplicate explicit target name" in warnings and "system-message" in html
