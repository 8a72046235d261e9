"""``kneo spec bundle sign|verify`` and ``kneo keys generate|list``.

Thin edge over :mod:`kneo.bundle`: this module reads files, the environment (through
:class:`~kneo.settings.Settings`), the clock and Git, then calls the pure functions. Secret
values (HMAC secrets, private keys) are only ever passed to the key objects, never printed.

Two imports wait for the command that needs them (``kneo keys`` never does):
:mod:`kneo.policy.check` for ``prepare_spec`` (+9 ms) and :mod:`kneo.evals.runner` for an
eval attestation (+0.29 s: the engine, the platform, SQLAlchemy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from kneo.bundle import (
    Bundle,
    BundleSource,
    Keyring,
    PolicyReportSummary,
    SigningKey,
    TrustedKey,
    cosign,
    dump_bundle,
    generate_ed25519,
    load_keyring,
    load_public_key,
    parse_bundle,
    sign_bundle,
    spec_digest,
    verify_bundle,
)
from kneo.cli.files import write_atomic
from kneo.cli.output import FileOutput, Output, SigningKeyFileOpt, SigningKeyIdOpt, options
from kneo.cli.signing import (
    DEFAULT_HMAC_KEY_ID,
    DEFAULT_KEY_ENV,
    attestation_file,
    hmac_secret,
    now,
    read_bundle_bytes,
    signing_key,
)
from kneo.errors import BundleError, ErrorCode, InvalidRequest
from kneo.names import check_name
from kneo.policy.environment import resolve_environment
from kneo.runtimes import create_runtime_registry
from kneo.spec.loader import load_spec
from kneo.spec.pinning import pin_code
from kneo.spec.project import ProjectContext

bundle_app = typer.Typer(no_args_is_help=True, help="Sign and verify approved spec bundles")
keys_app = typer.Typer(no_args_is_help=True, help="Generate and inspect signing keys")


# --------------------------------------------------------------------------- helpers


def git_source(spec_path: Path) -> BundleSource:
    """The spec path (relative to the Git work tree when inside one) and the HEAD commit."""
    resolved = spec_path.resolve()
    try:
        import git

        repo = git.Repo(resolved.parent, search_parent_directories=True)
        root = Path(repo.working_tree_dir or resolved.parent).resolve()
        commit = repo.head.commit.hexsha
        return BundleSource(path=resolved.relative_to(root).as_posix(), commit=commit)
    except Exception:  # not a checkout, no commits yet, or git missing: path only
        return BundleSource(path=spec_path.as_posix())


def _bundle_name(spec_path: Path) -> str:
    return spec_path.name.split(".")[0] or spec_path.stem


def _summary(bundle: Bundle) -> dict[str, Any]:
    return {
        "name": bundle.name,
        "environment": bundle.environment,
        "digest": bundle.digest,
        "approved_by": bundle.approved_by,
        "approved_at": bundle.to_document()["approved_at"],
        "source": bundle.source.model_dump(),
        "signatures": [{"alg": s.alg, "key_id": s.key_id} for s in bundle.signatures],
        "evals": [
            {"suite": a.suite, "pass_rate": a.pass_rate, "passed": a.passed, "total": a.total}
            for a in bundle.evals or []
        ],
        "code": bundle.spec.get("code") or [],
    }


# --------------------------------------------------------------------------- spec check


def prepare_spec(
    spec_path: Path, env: str | None
) -> tuple[dict[str, Any], str, PolicyReportSummary]:
    """Load and resolve a spec for ``env`` and refuse errors and policy violations.

    The environment's policy is the merged one (``.kneo/config.yaml`` plus
    ``environments/<env>.yaml``, stricter wins). Returns the resolved spec data, the
    environment and the report summary recorded in the bundle.
    """
    from kneo.policy.check import check_spec

    context = ProjectContext.discover(env=env)
    environment = context.env
    loaded = load_spec(
        spec_path,
        env=environment,
        project=context.config,
        declared=context.declared_environments(),
    )
    result = check_spec(
        loaded,
        env=environment,
        context=context,
        tool_registry=context.tool_registry(),
        runtime_registry=create_runtime_registry(),
        origin="bundle",
    )
    summary = PolicyReportSummary(
        valid=result.valid,
        error_count=len(result.errors),
        warning_count=len(result.warnings),
        enforcement_enabled=bool(result.policy is not None and result.policy.enabled),
        codes=sorted({d.code for d in result.diagnostics}),
    )
    if result.errors:
        first = result.errors[0]
        raise BundleError(
            f"{spec_path}: refusing to sign for {environment!r}: {len(result.errors)} error(s); "
            f"first {first.code} at {first.path}: {first.message}",
            code=ErrorCode.bundle_spec_rejected,
            environment=environment,
            diagnostics=[d.to_dict() for d in result.diagnostics],
        )
    return pin_code(loaded.spec, loaded.data, loaded.base_dir), environment, summary


# --------------------------------------------------------------------------- commands


@bundle_app.command("sign")
@options
def sign_command(
    spec_path: Path | None = typer.Argument(None, help="Spec to sign (optional with --cosign)"),
    output: Path | None = typer.Option(None, "--output", "-o", help="Bundle file to write"),
    approved_by: str | None = typer.Option(None, "--approved-by", help="Who approved it"),
    env: str | None = typer.Option(None, "--env", help="Target environment"),
    key_env: str | None = typer.Option(
        None, "--key-env", help="Variable holding the HMAC secret", show_default=DEFAULT_KEY_ENV
    ),
    key_file: SigningKeyFileOpt = None,
    key_id: SigningKeyIdOpt = None,
    cosign_path: Path | None = typer.Option(
        None, "--cosign", help="Add a signature to this existing bundle"
    ),
    name: str | None = typer.Option(
        None, "--name", help="Bundle name (default: spec file name up to the first dot)"
    ),
    evals: list[Path] | None = typer.Option(
        None,
        "--evals",
        help="Attach this eval result (kneo eval run --results FILE) as a signed "
        "attestation; it must be for the same digest (repeatable)",
    ),
    out: FileOutput = FileOutput(),
) -> None:
    """Create an approved, signed spec bundle."""
    key = signing_key(key_env, key_file, key_id)
    if cosign_path is not None:
        if evals:
            raise typer.BadParameter(
                "--evals adds to what the first signature covers; attach results when the "
                "bundle is first signed"
            )
        if approved_by is not None or name is not None:
            raise typer.BadParameter(
                "--approved-by and --name are part of what the first signature covers; "
                "co-signing keeps them as they are"
            )
        bundle = _cosigned(cosign_path, key, spec_path, env)
        target = output or cosign_path
    else:
        if spec_path is None or output is None or approved_by is None:
            raise typer.BadParameter(
                "SPEC_PATH, --output and --approved-by are required (or use --cosign BUNDLE)"
            )
        bundle = _first_signed(spec_path, key, approved_by, env, name, evals or [])
        target = output
    write_atomic(target, dump_bundle(bundle))
    if not out.printed_json({"output": str(target), **_summary(bundle)}):
        signers = ", ".join(f"{s.key_id} ({s.alg})" for s in bundle.signatures)
        typer.echo(
            f"signed {target}: {bundle.name} for {bundle.environment}, {bundle.digest}, "
            f"signatures: {signers}"
        )


def _first_signed(
    spec_path: Path,
    key: SigningKey,
    approved_by: str,
    env: str | None,
    name: str | None,
    evals: list[Path],
) -> Bundle:
    """A new bundle of the spec resolved for ``env``, approved by ``approved_by``, with its
    Git source, policy report and eval attestations under the first signature."""
    name = check_name(name or _bundle_name(spec_path), kind="bundle name", field="name")
    data, environment, summary = prepare_spec(spec_path, env)
    return sign_bundle(
        data,
        key,
        name=name,
        environment=environment,
        approved_by=approved_by,
        approved_at=now(),
        source=git_source(spec_path),
        policy_report=summary,
        evals=[attestation_file(path) for path in evals],
    )


def _cosigned(
    cosign_path: Path, key: SigningKey, spec_path: Path | None, env: str | None
) -> Bundle:
    """The bundle at ``cosign_path`` with one more signature; an error when it is for another
    environment than ``env`` or when ``spec_path`` no longer resolves to its spec."""
    bundle = cosign(read_bundle_bytes(cosign_path), key)
    if env is not None and env != bundle.environment:
        raise BundleError(
            f"{cosign_path} is a bundle for {bundle.environment!r}, not {env!r}",
            code=ErrorCode.bundle_environment_mismatch,
        )
    if spec_path is not None:
        data, _, _ = prepare_spec(spec_path, env or bundle.environment)
        if spec_digest(data) != bundle.digest:
            raise BundleError(
                f"{spec_path} does not resolve to the spec in {cosign_path} "
                f"(digest {spec_digest(data)} vs {bundle.digest})",
                code=ErrorCode.bundle_digest_mismatch,
            )
    return bundle


def _verification_keyring(
    bundle_bytes: bytes,
    key_env: str | None,
    public_key: Path | None,
    keyring_dir: Path | None,
    key_id: str | None,
) -> Keyring:
    chosen = [x for x in (key_env, public_key, keyring_dir) if x is not None]
    if len(chosen) > 1:
        raise InvalidRequest("use only one of --key-env, --public-key and --keyring")
    if public_key is not None:
        return Keyring([load_public_key(public_key, key_id)])
    if keyring_dir is not None:
        return load_keyring(keyring_dir)
    secret = hmac_secret(key_env or DEFAULT_KEY_ENV)
    if key_id is not None:
        return Keyring([TrustedKey.hmac(key_id, secret)])
    # One shared secret and no key id given: it stands for every HMAC key id the bundle names.
    try:
        model, _ = parse_bundle(bundle_bytes)
    except BundleError:
        return Keyring([TrustedKey.hmac(DEFAULT_HMAC_KEY_ID, secret)])
    ids = dict.fromkeys(s.key_id for s in model.signatures if s.alg == "hmac-sha256")
    return Keyring([TrustedKey.hmac(i, secret) for i in ids or [DEFAULT_HMAC_KEY_ID]])


@bundle_app.command("verify")
@options
def verify_command(
    bundle_path: Path = typer.Argument(..., help="Bundle JSON file"),
    key_env: str | None = typer.Option(
        None, "--key-env", help="Variable holding the HMAC secret", show_default=DEFAULT_KEY_ENV
    ),
    public_key: Path | None = typer.Option(None, "--public-key", help="Ed25519 public key (PEM)"),
    keyring_dir: Path | None = typer.Option(None, "--keyring", help="Directory of *.pub keys"),
    key_id: str | None = typer.Option(None, "--key-id", help="Key id of --public-key/--key-env"),
    required_signatures: int = typer.Option(
        1, "--required-signatures", min=1, help="Distinct valid signers needed"
    ),
    environments_dir: Path | None = typer.Option(
        None,
        "--environments",
        help="Apply environments/<env>.yaml (required_signatures, accepted_key_ids)",
    ),
    out: Output = Output(),
) -> None:
    """Verify an approved spec bundle digest and signature."""
    data = read_bundle_bytes(bundle_path)
    keyring = _verification_keyring(data, key_env, public_key, keyring_dir, key_id)
    accepted: list[str] | None = None
    if environments_dir is not None:
        model, _ = parse_bundle(data)
        policy = resolve_environment(
            model.environment, project_policy=None, environments_dir=environments_dir
        )
        required_signatures = max(required_signatures, policy.required_signatures)
        accepted = policy.accepted_key_ids
    verified = verify_bundle(
        data,
        keyring,
        now=now(),
        required_signatures=required_signatures,
        accepted_key_ids=accepted,
    )
    if not out.printed_json(
        {"valid": True, **_summary(verified.bundle), "signers": list(verified.signer_key_ids)}
    ):
        typer.echo(
            f"ok: {bundle_path}: {verified.name} for {verified.environment}, {verified.digest}, "
            f"signed by {', '.join(verified.signer_key_ids)}"
        )
        for pinned in verified.bundle.spec.get("code") or []:  # the code the digest covers
            typer.echo(f"  code {pinned['path']} sha256:{pinned['sha256']}")


@keys_app.command("generate")
@options
def generate_command(
    key_id: str = typer.Argument(..., help="Key id; names the files KEY_ID.key and KEY_ID.pub"),
    output_dir: Path = typer.Option(..., "--output-dir", help="Directory to write the key pair"),
    out: Output = Output(),
) -> None:
    """Generate an Ed25519 signing key pair (private key file mode 0600)."""
    generated = generate_ed25519(key_id, output_dir)
    result = {
        "key_id": generated.key_id,
        "alg": "ed25519",
        "private_key_path": str(generated.private_path),
        "public_key_path": str(generated.public_path),
        "fingerprint": generated.fingerprint,
    }
    if not out.printed_json(result):
        typer.echo(
            f"generated {generated.key_id} ({generated.fingerprint})\n"
            f"  private: {generated.private_path} (mode 0600; keep it in your CI secret store)\n"
            f"  public:  {generated.public_path} (give this to verifiers)"
        )


@keys_app.command("list")
@options
def list_command(
    keyring_dir: Path = typer.Argument(..., help="Keyring directory (*.pub, keyring.yaml)"),
    out: Output = Output(),
) -> None:
    """List the public keys of a keyring with fingerprints and validity windows."""
    keyring = load_keyring(keyring_dir)
    rows = [key.describe() for key in keyring]
    if out.printed_json({"keys": rows}):
        return
    if not rows:
        typer.echo(f"no keys in {keyring_dir}")
    for row in rows:
        window = f"{row['not_before'] or '-'} .. {row['not_after'] or '-'}"
        typer.echo(f"{row['key_id']}\t{row['alg']}\t{row['fingerprint']}\t{window}")
