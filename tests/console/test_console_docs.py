"""docs/console.md shows every page with a screenshot the browser journeys take."""

from __future__ import annotations

import re
import struct

from console_helpers import ROOT


def test_every_screenshot_exists_at_the_journeys_viewport() -> None:
    doc = (ROOT / "docs" / "console.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\((images/[^)]+\.png)\)", doc)
    journeys = "".join(
        (ROOT / "tests" / "console" / name).read_text()
        for name in ("test_console_browser.py", "test_console_projects_browser.py")
    )
    assert len(images) == 14
    for image in images:
        data = (ROOT / "docs" / image).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", image
        width, height = struct.unpack(">II", data[16:24])
        phone = "-phone-" in image  # a 390 px wide phone's, else a 1280x800 laptop's
        assert width == (390 if phone else 1280), (image, width)
        assert height >= (844 if phone else 800), (image, height)
        assert image.removeprefix("images/") in journeys, f"{image} is taken by no journey"


def test_every_request_kind_has_its_form_described() -> None:
    from typing import get_args

    from kneo.spec.models import RequestKind

    doc = (ROOT / "docs" / "console.md").read_text()
    described = set(re.findall(r"^\| `(\w+)` \|", doc, re.M))
    assert set(get_args(RequestKind)) <= described
