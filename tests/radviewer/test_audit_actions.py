"""One list of audit actions: the code writes only these, the filter offers them, the docs list them."""

from __future__ import annotations

import re
from pathlib import Path

from radviewer.audit.actions import AuditAction
from radviewer.audit.forms import AuditFilterForm

ROOT = Path(__file__).resolve().parents[2]
CODE = [p for pkg in ("clinical", "mlcore", "radviewer") for p in (ROOT / pkg).rglob("*.py")
        if "migrations" not in p.parts]


def test_docs_list_every_action_and_no_other():
    documented = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", (ROOT / "docs" / "audit.md").read_text(), re.M))
    assert documented == set(AuditAction.values)


def test_code_writes_no_free_form_action_string():
    literal = re.compile(r"""(?:\baction=|\.audit\()\s*f?["'][a-z_]+\.""")
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in CODE
                 for n, line in enumerate(p.read_text().splitlines(), 1) if literal.search(line)]
    assert offenders == []


def test_the_filter_takes_an_action_or_its_start_and_nothing_else():
    assert all(AuditFilterForm({"action": a}).is_valid() for a in AuditAction.values)
    assert AuditFilterForm({"action": "study."}).is_valid()
    assert not AuditFilterForm({"action": "study.made_up"}).is_valid()
