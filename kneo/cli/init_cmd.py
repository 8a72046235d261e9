"""``kneo init [DIR]``: a project a user can run at once, from the templates in the package.

``--template project`` (the default) is a local project; ``--template gitops`` is the same
plus what a spec repository needs (the spec-repository workflow, ``bundles/``, ``keys/``).
The JSON Schemas are copied into ``.kneo/schemas/`` and every YAML file's
``yaml-language-server`` comment points there, so an editor validates offline. Nothing is
overwritten: a directory that already holds one of the files is refused (``--force``
overwrites those files and leaves every other file alone).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from kneo.errors import ConfigError, ErrorCode
from kneo.version import package_version

TEMPLATES = ("project", "gitops")
#: ``gitops`` is ``project`` with these files added.
_LAYERS = {"project": ("project",), "gitops": ("project", "gitops")}


#: The package's own files (the wheel ships both folders as package data).
PACKAGE = Path(__file__).resolve().parents[1]


def planned(template: str) -> dict[str, Path]:
    """Target path (``.tmpl`` removed) -> template file, the later layer winning."""
    plan: dict[str, Path] = {}
    for layer in _LAYERS[template]:
        root = PACKAGE / "templates" / layer
        for entry in sorted(root.rglob("*")):
            if entry.is_file() and "__pycache__" not in entry.parts:
                plan[entry.relative_to(root).as_posix().removesuffix(".tmpl")] = entry
    for entry in sorted((PACKAGE / "schemas").glob("*.schema.json")):
        plan[f".kneo/schemas/{entry.name}"] = entry
    return plan


def _render(text: str, name: str) -> str:
    """The template with the project's name and the Kneo version running ``kneo init``.

    The version pinned is the one installed, never a guess: a release pins its release, a
    development build its exact ``0.1.devN+g<hash>`` (which a package index does not serve:
    the workflow template says to pin a release or a Git reference instead).
    """
    return text.replace("__KNEO_NAME__", name).replace("__KNEO_VERSION__", package_version())


def scaffold(target: Path, template: str, name: str, *, force: bool) -> list[Path]:
    """Write the template into ``target``; the paths written."""
    if target.exists() and not target.is_dir():
        raise ConfigError(
            f"{target} is a file, not a directory", code=ErrorCode.config_error, field="directory"
        )
    plan = planned(template)
    existing = [path for path in plan if (target / path).exists()]
    if existing and not force:
        raise ConfigError(
            f"{target} already holds {', '.join(existing[:3])}"
            f"{' ...' if len(existing) > 3 else ''}; pass --force to overwrite those files",
            code=ErrorCode.config_exists,
            file=str(target / existing[0]),
        )
    written = []
    for relative, entry in plan.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if relative.startswith(".kneo/schemas/"):
            shutil.copyfile(entry, path)
        else:
            path.write_text(_render(entry.read_text(encoding="utf-8"), name), encoding="utf-8")
        written.append(path)
    return written


def register(app: typer.Typer) -> None:
    """Adds the ``init`` command to the root app."""

    @app.command("init")
    def init_command(
        directory: Annotated[
            Path, typer.Argument(help="Directory to create the project in (made if missing)")
        ] = Path("."),
        template: Annotated[
            str, typer.Option("--template", help="project (local) or gitops (a spec repository)")
        ] = "project",
        name: Annotated[
            str | None, typer.Option("--name", help="Project name; default: the directory's")
        ] = None,
        force: Annotated[bool, typer.Option("--force", help="Overwrite existing files")] = False,
    ) -> None:
        """Create a runnable Kneo project: config, specs, environments, evals, schemas."""
        if template not in TEMPLATES:
            raise ConfigError(
                f"unknown template {template!r}; choose one of: {', '.join(TEMPLATES)}",
                code=ErrorCode.config_error,
                field="template",
            )
        target = directory.resolve()
        project = (name or target.name or "kneo-project").strip()
        if not project or any(ch in project for ch in "\n\r:#"):
            raise ConfigError(
                f"invalid project name {project!r}", code=ErrorCode.config_error, field="name"
            )
        written = scaffold(target, template, project, force=force)
        print(f"created {len(written)} files in {target} (template '{template}')")
        print(
            f"next: cd {directory} && kneo run specs/approval.yaml --input hello --target workflow"
        )
