"""``POST /v1/runs`` with a skills overlay: applied before the spec is checked, recorded on
the run, refused naming its field when it names an undeclared skill or rides a bundle run."""

from __future__ import annotations

from svc_helpers import auth_env, headers

SPEC = "examples/agent_skills.yaml"


def test_a_run_records_its_skills_overlay_and_refuses_an_undeclared_skill(make_client) -> None:
    client = make_client(auth_env())
    body = {"input": "Draft a note on otters", "spec_path": SPEC}
    r = client.post(
        "/v1/runs",
        headers=headers("operator"),
        json={**body, "skills": {"add": ["word-budget"], "remove": ["house-style"]}},
    )
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["status"] == "succeeded" and "Sea otters" in run["output_text"]
    got = client.get(f"/v1/runs/{run['run_id']}", headers=headers("viewer")).json()
    assert got["metadata"]["skills_overlay"] == {
        "add": ["word-budget"],
        "remove": ["house-style"],
    }
    plain = client.post("/v1/runs", headers=headers("operator"), json=body).json()
    shown = client.get(f"/v1/runs/{plain['run_id']}", headers=headers("viewer")).json()
    assert "skills_overlay" not in shown["metadata"]
    bad = client.post(
        "/v1/runs", headers=headers("operator"), json={**body, "skills": {"add": ["nope"]}}
    )
    assert bad.status_code == 400, bad.text
    assert bad.json()["error"] == "E_UNKNOWN_SKILL" and bad.json()["path"] == "skills.add[0]"
    unknown = client.post(
        "/v1/runs", headers=headers("operator"), json={**body, "skills": {"enable": ["x"]}}
    )
    assert unknown.status_code == 422 and "skills" in unknown.text
    bundle = client.post(
        "/v1/runs",
        headers=headers("operator"),
        json={
            "input": "x",
            "bundle": "agent-skills",
            "environment": "dev",
            "skills": {"remove": ["house-style"]},
        },
    )
    assert bundle.status_code == 400 and bundle.json()["field"] == "skills", bundle.text


def test_an_inline_spec_names_no_undeclared_function_in_middleware_or_nested_workflows(
    make_client,
) -> None:
    """An inline spec may name only the functions the project declares: a middleware's
    function and a backing workflow's function step pass through the same grant."""
    client = make_client(auth_env())
    layer = {"type": "guardrail", "stage": "input", "function": "examples.agent_layers:off_topic"}
    hostile = [
        (
            {"agent": {"name": "a", "middleware": [layer]}},
            "agent.middleware[0].function",
        ),
        (
            {
                "agent": {"name": "a", "workflow": "w"},
                "components": {
                    "workflows": {
                        "w": {
                            "steps": [
                                {
                                    "id": "s",
                                    "kind": "function",
                                    "ref": "examples.agent_layers:off_topic",
                                }
                            ]
                        }
                    }
                },
            },
            "components.workflows.w.steps[0].ref",
        ),
    ]
    for spec, path in hostile:
        r = client.post(
            "/v1/runs",
            headers=headers("operator"),
            json={"input": "x", "spec": {"version": "v1", **spec}},
        )
        assert r.status_code == 400, r.text  # a spec refused by its diagnostics
        assert r.json()["error"] == "E_FUNCTION_NOT_ALLOWED" and path in r.text, r.text
