"""Issue 54, item 4: the controller's webhook takes GitHub's deliveries in both content types.

GitHub signs the exact bytes it sends (``X-Hub-Signature-256``: HMAC-SHA256 with the hook's
secret) and by default sends them as ``application/x-www-form-urlencoded``, the push event's
JSON in one ``payload`` field; ``application/json`` is the other choice. Against a real
``kneo service serve`` with its controller and a real Git remote, each is accepted and the
pushed commit becomes active.

The door: anyone who can reach the webhook (it takes no API key) and does not hold the
secret. Each attempt is refused with its code and queues nothing (the database's request rows
are counted): a wrong secret, a signature over the decoded JSON rather than the body sent, a
form whose body was changed after signing, a form that carries ``payload`` twice (two
readings: GitHub's and an attacker's), JSON inside the form with a member given twice
(``E_DUPLICATE_KEY``, as in a JSON body), a form with another field, and a body that is not
a form at all. GitLab's ``X-Gitlab-Token`` (a shared secret sent as is) is not a way in: the
docs promise GitHub's signature only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from tests.service.gitops_served import (
    WEBHOOK_SECRET,
    Served,
    deliver,
    github_delivery,
    github_push,
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    world = Served(tmp_path)
    world.commit("helper", "first")
    world.start()
    yield world
    world.stop()


def test_github_deliveries_in_both_content_types_reach_the_controller(served: Served) -> None:
    served.wait_commit("helper", served.repo.git("rev-parse", "HEAD"))
    for form, prompt in ((True, "second"), (False, "third")):
        sha = served.commit("helper", prompt)
        body, headers = github_delivery(github_push(served.repo), form=form)
        if form:
            assert body.startswith(b"payload=%7B%22ref%22") and b"%E2%80%9C" in body
        r = deliver(served, body, headers)
        assert r.status_code == 202, r.text
        answer = r.json()
        assert answer["accepted"] is True and answer["ref"] == "refs/heads/main"
        assert answer["delivery"] == headers["X-GitHub-Delivery"]
        assert served.wait_commit("helper", sha, timeout=10)["commit"] == sha
    ping, headers = github_delivery({"zen": "Keep it logically awesome."}, form=True, event="ping")
    r = deliver(served, ping, headers)
    assert r.status_code == 202 and r.json() == {"accepted": False, "event": "ping"}


def _form(*fields: tuple[str, str]) -> bytes:
    return urlencode(list(fields)).encode("ascii")


def test_what_the_secret_does_not_sign_is_refused_and_queues_nothing(served: Served) -> None:
    push = github_push(served.repo)
    text = json.dumps(push, separators=(",", ":"), ensure_ascii=False)
    before = served.requests_made()

    wrong, headers = github_delivery(push, form=True, secret="not-the-secret")
    r = deliver(served, wrong, headers)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert WEBHOOK_SECRET not in r.text

    # signed over the JSON a proxy might re-encode, sent as the form: not the bytes signed
    body, headers = github_delivery(push, form=True)
    _, json_headers = github_delivery(push, form=False)
    headers["X-Hub-Signature-256"] = json_headers["X-Hub-Signature-256"]
    assert deliver(served, body, headers).status_code == 401

    # a form changed after signing: another ref appended to the signed bytes
    body, headers = github_delivery(push, form=True)
    r = deliver(served, body + b"&payload=" + quote('{"ref":"refs/heads/evil"}').encode(), headers)
    assert r.status_code == 401

    refused = {
        "payload twice": (
            _form(("payload", text), ("payload", '{"ref":"refs/heads/evil"}')),
            "E_DUPLICATE_KEY",
        ),
        "a member twice": (
            _form(("payload", '{"ref":"refs/heads/main","ref":"refs/heads/evil"}')),
            "E_DUPLICATE_KEY",
        ),
        "another field": (_form(("payload", text), ("ref", "refs/heads/evil")), "invalid_request"),
        "no payload": (_form(("data", text)), "invalid_request"),
        "not a form": (b"payload", "invalid_request"),
        "not UTF-8": (b"payload=%FF%FE", "invalid_request"),
        "not JSON": (_form(("payload", "{ref: main")), "E_JSON"),
    }
    for name, (body, code) in refused.items():
        _, headers = github_delivery("", form=True)
        signed, headers = _signed(body, headers)
        r = deliver(served, signed, headers)
        assert r.status_code == 400, (name, r.text)
        assert r.json()["error"] == code, (name, r.text)
        assert "Traceback" not in r.text
    duplicate_json, headers = _signed(b'{"ref":"refs/heads/main","ref":"x"}', {})
    headers["Content-Type"] = "application/json"
    r = deliver(served, duplicate_json, headers)
    assert r.status_code == 400 and r.json()["error"] == "E_DUPLICATE_KEY"

    gitlab = deliver(
        served,
        text.encode(),
        {"Content-Type": "application/json", "X-Gitlab-Token": WEBHOOK_SECRET},
    )
    assert gitlab.status_code == 401
    assert served.requests_made() == before, "a refused delivery queued a reconcile"


def _signed(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """``body`` signed with the hook's secret, as GitHub signs (so only the shape is wrong)."""
    digest = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {**headers, "X-Hub-Signature-256": "sha256=" + digest}
