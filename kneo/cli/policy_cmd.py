"""``kneo policy sign``: sign a change of an environment's policy in a GitOps checkout;
``kneo policy preview``: what storing a policy for an environment would change.

The controller lets a policy change that loosens a gate take effect only with what the
policy in force demands (docs/gitops.md, "Policy changes"): signatures of accepted keys
over the new policy, in ``environments/approvals/<env>.json``. This command writes that
file (or adds a signature to it) for the environment's effective policy in the checkout,
which is exactly what the controller will compute at the commit. Secret key material is
only handed to the key objects, never printed.

``policy sign`` imports the signing half where it runs (:mod:`kneo.bundle.policy_approval`,
:mod:`kneo.policy.ratchet`, the key helpers: +76 ms, cryptography): ``policy preview`` never
needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from kneo.cli.files import write_atomic
from kneo.cli.output import (
    ClientOptions,
    Output,
    SigningKeyEnvOpt,
    SigningKeyFileOpt,
    SigningKeyIdOpt,
    options,
)
from kneo.documents import read_file
from kneo.errors import ErrorCode, InvalidRequest
from kneo.names import check_name
from kneo.spec.project_blocks import PolicyEnforcement
from kneo.spec.yaml_io import read_yaml_mapping, validate_mapping

app = typer.Typer(no_args_is_help=True, help="Sign policy changes for the GitOps controller")


@app.command("sign")
@options
def sign_command(
    environment: str = typer.Argument(..., help="The environment whose policy to sign"),
    approved_by: str = typer.Option(..., "--approved-by", help="Who approved the change"),
    repo: Path = typer.Option(Path("."), "--repo", help="The checkout's root"),
    summary: str = typer.Option("", "--summary", help="What the change does, for readers"),
    removal: bool = typer.Option(
        False, "--removal", help="Sign the environment's removal (its file is deleted)"
    ),
    key_env: SigningKeyEnvOpt = None,
    key_file: SigningKeyFileOpt = None,
    key_id: SigningKeyIdOpt = None,
    out: Output = Output(),
) -> None:
    """Sign ENVIRONMENT's policy as the checkout holds it (a co-signature when the approval
    file already signs the same policy); commit the file with the change."""
    from kneo.bundle.policy_approval import (
        approval_path,
        dump_policy_approval,
        sign_policy_approval,
    )
    from kneo.cli.signing import now, signing_key
    from kneo.policy.ratchet import checkout_policy, policy_digest

    check_name(environment, kind="environment")
    policy = checkout_policy(repo, environment)
    if (policy is None) != removal:
        raise InvalidRequest(
            f"environments/{environment}.yaml is missing; pass --removal to sign its removal"
            if policy is None
            else f"environments/{environment}.yaml exists; --removal signs a deleted file",
            code=ErrorCode.invalid_request,
            field="--removal",
        )
    key = signing_key(key_env, key_file, key_id)
    target = repo / approval_path(environment)
    existing = read_file(target, what="policy approval") if target.exists() else None
    digest = policy_digest(environment, policy)
    approval = sign_policy_approval(
        environment,
        digest,
        key,
        approved_by=approved_by,
        approved_at=now(),
        summary=summary or ("environment removed" if removal else ""),
        existing=existing,
    )
    write_atomic(target, dump_policy_approval(approval))
    data = {
        "output": str(target),
        "environment": environment,
        "policy_digest": digest,
        "signers": [s.key_id for s in approval.signatures],
    }
    if not out.printed_json(data):
        typer.echo(
            f"signed {target}: {environment} at {digest[:19]} "
            f"(signatures: {', '.join(data['signers'])})"
        )


@app.command("preview")
@options
def preview_command(
    environment: str = typer.Argument(..., help="The environment whose policy would change"),
    policy_file: Path = typer.Argument(
        ..., help="The proposed policy_enforcement block (YAML or JSON), as PUT takes it"
    ),
    opts: ClientOptions = ClientOptions(),
) -> None:
    """What storing POLICY_FILE for ENVIRONMENT would change, gate by gate, against the policy
    in force there; writes nothing. With --service-url/--profile the service answers (its
    stored policy counts), else the local project and store. Exit 0 whatever it finds."""
    check_name(environment, kind="environment")
    data, text = read_yaml_mapping(policy_file, what="policy")
    policy = validate_mapping(
        PolicyEnforcement, data, file=policy_file, text=text, kind="policy_enforcement"
    )
    assert isinstance(policy, PolicyEnforcement)
    answer = opts.client(environment=environment).preview_environment_policy(environment, policy)
    if opts.printed_json(answer):
        return
    _print_preview(answer)


def _print_preview(answer: dict[str, Any]) -> None:
    env, source = answer["environment"], answer["current_source"]
    against = {"stored": "the stored policy", "project": "the project's policy"}.get(
        source, "no policy (nothing enforced)"
    )
    if not answer["changes"]:
        typer.echo(f"{env}: no gate changes against {against}")
        return
    typer.echo(f"{env}: against {against}:")
    for change in answer["changes"]:
        typer.echo(f"  {change['direction']:<9} {change['summary']}")
    blocked = answer.get("newly_blocking") or []
    typer.echo(
        f"runs: {answer.get('runs_evaluated', 0)} recent run(s) of {env} checked, "
        f"{len(blocked)} would be refused" + (f": {', '.join(blocked[:5])}" if blocked else "")
    )
    if answer["needs_policy_approval"]:
        typer.echo(
            "loosens: the GitOps controller would hold this change until the policy in force "
            "approves it (kneo policy sign); PUT applies it at once"
        )
