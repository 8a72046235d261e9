"""docs/environment.md documents every variable that kneo.settings reads."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from kneo import setting_groups, settings

ROOT = Path(__file__).resolve().parents[2]


def _variables_read() -> set[str]:
    source = Path(settings.__file__).read_text()
    names = set(re.findall(r'"(KNEO_[A-Z0-9_]+)"', source))
    names |= {f"KNEO_SERV_{f.name.upper()}" for f in fields(setting_groups.Limits)}
    names |= {
        f"KNEO_SERV_CHECKPOINT_{f.name.upper()}" for f in fields(setting_groups.CheckpointLimits)
    }
    names |= {f"KNEO_SERV_RETENTION_{f.name.upper()}" for f in fields(setting_groups.RetentionDays)}
    names |= {
        f"KNEO_SERV_NOTIFICATIONS_{f.name.upper()}"
        for f in fields(setting_groups.NotificationSettings)
    }
    return names


def test_every_variable_is_documented() -> None:
    doc = (ROOT / "docs" / "environment.md").read_text()
    documented = set(re.findall(r"`(KNEO_[A-Z0-9_]+)`", doc))
    missing = _variables_read() - documented
    assert not missing, f"undocumented variables: {sorted(missing)}"
