"""Untrusted text as text, in each markup a message lands in.

Every value a message shows from a run, a model, a spec or a caller (a workflow name, a
prompt, an agent's question, an actor's name) is escaped for where it goes, so that only
Kneo's own templates make mentions, links or formatting: Slack's ``mrkdwn`` (where
``<!here>`` is a mention and ``<url|label>`` a link; Slack's escapes are ``&amp;``, ``&lt;``
and ``&gt;``), an Adaptive Card's Markdown (``[label](url)`` is a link: every ASCII
punctuation a Markdown renderer reads is backslash-escaped, as CommonMark allows), and
HTML (:func:`html.escape`, in the mail's HTML part). Pure functions, no I/O.
"""

from __future__ import annotations

import re

#: The ASCII punctuation that starts a Markdown link, image, emphasis, code span, heading,
#: quote, table or HTML, backslash-escaped as CommonMark allows (spec 2.4).
_MARKDOWN_PUNCTUATION = re.compile(r"([!#()*<>\[\\\]_`|~])")


def mrkdwn(value: object) -> str:
    """``value`` as literal text in Slack ``mrkdwn`` (and a message's ``text``): ``&``,
    ``<`` and ``>`` escaped, so no mention, link or channel reference can be formed."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def card_markdown(value: object) -> str:
    """``value`` as literal text in an Adaptive Card ``TextBlock`` or fact (Markdown): each
    Markdown punctuation character backslash-escaped, so ``[x](url)`` is no link and
    ``**`` no emphasis; line breaks kept as spaces (a fact is one line)."""
    text = " ".join(str(value).splitlines())
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", text)


__all__ = ["card_markdown", "mrkdwn"]
