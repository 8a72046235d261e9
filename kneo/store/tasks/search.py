"""Inbox search: the words a pending task is found by, and a query's words.

A pending task is indexed by the words of its requests' prompts, its run's input, its
workflow (or promoted bundle) name and its assignees: one ``continuation_terms`` row per
distinct word, ``(term, created_at, continuation_id)``, which is also the inbox's order. So
a search is a walk of one term's rows in the inbox's order (keyset paging, flat however many
tasks are pending) probing the task's other words by ``(continuation_id, term)``; rows exist
only while the task is pending, so answered tasks never slow a search down.

A word is a run of letters, digits or ``_`` (Unicode), case-folded, cut at
:data:`MAX_LENGTH` (one letter or digit is a word too: "task 7" tells task 7 apart). Every
word of a query must match a whole word of the task (no prefixes: a prefix has no order an
index can walk). The caller redacts the text before it is indexed, so a secret is never a term (and no search
can tell whether a task holds one).

The same rows carry a pending task's *labels*: ``=a:<assignee>`` and ``=k:<kind>`` for each
pending request (no kind label on a promotion, which the ``kind`` filter finds by its workflow
kind; a promotion's approvers are its assignee labels, migration 0024). A word is letters, digits and ``_`` only, so no query word is ever a label. The inbox
filters by assignee and kind walk a label's rows in the inbox's order, as a search walks a
word's: a page of a rare assignee costs what a page of a common one does. A label longer than
:data:`MAX_LENGTH` is its value's digest; the filter still checks each task's requests exactly
(``continuation_requests``), so the label only chooses which rows to walk. A promotion's
approvers have no request row (a request has one assignee, a promotion names several): they
are checked by their label rows, exact for a name that fits a term and a SHA-256 prefix of
148 bits for a longer one.

Terms are a project's (:func:`scoped_term`): the default project's as they are, another's
behind its prefix ``~<id>:``, which no word or label starts with. So a search or a label
lookup walks its own project's key range of the same index, however many projects there are,
and neither big table has a project column: the default project's rows cost no byte more,
and the tables from before projects needed no rewrite (migration 0026).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence

from kneo.errors import InvalidRequest
from kneo.lifecycle import TaskStatus, request_status
from kneo.projects import DEFAULT_PROJECT_ID
from kneo.redaction import redact_text

#: Longer words are indexed (and searched) by their first characters.
MAX_LENGTH = 40
#: Distinct words indexed per task, the names, assignees and prompts first, then the run's
#: input's: each is a row in two indexes written with the pause (a rare word lands on a page
#: of its own), so the bound is what a pause pays: about 0.3 ms and 2.5 KB for 20 words.
MAX_TERMS = 40
#: Characters of the run's input read for its words (its first ones tell tasks apart).
INPUT_CHARS = 400
#: Words a query may hold.
MAX_QUERY_TERMS = 8
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """The distinct index words of ``text``, in order of first appearance."""
    return list(dict.fromkeys(w[:MAX_LENGTH] for w in _WORD.findall(text.casefold())))


def task_terms(texts: Iterable[str | None]) -> list[str]:
    """The words a task is found by: those of ``texts`` in turn, at most :data:`MAX_TERMS`."""
    return words(" ".join([text for text in texts if text]))[:MAX_TERMS]


def query_terms(query: str) -> list[str]:
    """A search's words; a query with none, or with more than :data:`MAX_QUERY_TERMS`, is
    ``400 invalid_request`` naming ``q``."""
    found = words(query)
    if not found:
        raise InvalidRequest("q must hold a word (letters, digits or _)", field="q")
    if len(found) > MAX_QUERY_TERMS:
        raise InvalidRequest(f"q may hold at most {MAX_QUERY_TERMS} words", field="q")
    return found


#: Characters of a run's output (and of its error message) read for its words.
OUTCOME_CHARS = 2000
#: Distinct words indexed per run outcome (each a ``run_terms`` row written with it).
MAX_OUTCOME_TERMS = 64


def outcome_terms(output_text: str | None, error: object) -> list[str]:
    """The words a run is found by (``GET /v1/runs?q=``): those of its output and its error
    message, redacted first (a secret is never a term), at most :data:`MAX_OUTCOME_TERMS`."""
    message = error.get("message") if isinstance(error, Mapping) else None
    texts = [t[:OUTCOME_CHARS] for t in (output_text, message) if isinstance(t, str) and t]
    return words(redact_text(" ".join(texts)))[:MAX_OUTCOME_TERMS] if texts else []


#: the inbox's kind of a promotion's task (its requests are approvals of a promotion)
PROMOTION = "promotion"
#: What starts a label (never a word: words are ``\w`` only), and its two kinds.
LABEL = "="
ASSIGNEE = "a"
KIND = "k"


def label(prefix: str, value: str) -> str:
    """The label term of ``value``: ``=<prefix>:<value>``, or its digest when that is longer
    than a term may be."""
    term = f"{LABEL}{prefix}:{value}"
    if len(term) <= MAX_LENGTH:
        return term
    digest = hashlib.sha256(value.encode()).hexdigest()
    return f"{LABEL}{prefix}#{digest}"[:MAX_LENGTH]


def task_labels(
    requests: Sequence[Mapping[str, object]],
    *,
    promotion: bool,
    approvers: Iterable[object] = (),
) -> list[str]:
    """The labels of a task's *pending* requests: each assignee and (not for a promotion)
    each kind, once; a promotion's (freeze override's, rollback's) ``approvers`` (its
    context's: ``group:release``, ``user:cto@example.com``, a key's name) are assignee labels
    of it while a request of it is pending, so the assignee filter and *Mine* find it."""
    found: dict[str, None] = {}
    pending = False
    for r in requests:
        if request_status(r) is not TaskStatus.PENDING:
            continue
        pending = True
        if r.get("assignee"):
            found.setdefault(label(ASSIGNEE, str(r["assignee"])))
        if r.get("kind") and not promotion:
            found.setdefault(label(KIND, str(r["kind"])))
    if promotion and pending:
        for approver in approvers:
            if isinstance(approver, str) and approver:
                found.setdefault(label(ASSIGNEE, approver))
    return list(found)


def approvers_of(context: Mapping[str, object] | None) -> list[str]:
    """The ``approvers`` of a promotion's (freeze override's, rollback's) context."""
    found = (context or {}).get("approvers")
    return [a for a in found if isinstance(a, str) and a] if isinstance(found, list) else []


#: What starts a term of a project other than the default (never a word's or a label's
#: first character).
SCOPE = "~"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def scoped_term(project_id: int, term: str) -> str:
    """``term`` (a word or a label) as project ``project_id``'s rows hold it: as it is for
    the default project, else behind ``~<id in base 36>:`` (at most 8 characters for any
    32-bit id: ``tables.Term`` takes 48)."""
    if project_id == DEFAULT_PROJECT_ID:
        return term
    digits, left = "", project_id
    while True:
        left, digit = divmod(left, 36)
        digits = _DIGITS[digit] + digits
        if not left:
            return f"{SCOPE}{digits}:{term}"
