"""Sign and verify 1,000 bundles with Ed25519 and HMAC-SHA256; print per-bundle cost.

    python bench/bundles.py [--count 1000]

The spec is the example research agent resolved for prod (a typical bundle, ~2-3 KB).
Verification is measured from raw bytes, as the controller does after reading Git:
parse + schema + digest + signature. Target: verification under 1 ms per bundle.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kneo.bundle import (  # noqa: E402
    BundleSource,
    Keyring,
    SigningKey,
    dump_bundle,
    generate_ed25519,
    load_signing_key,
    parse_bundle,
    sign_bundle,
    signing_payload,
    spec_digest,
    verify_bundle,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _per_item_us(fn: Callable[[], Any], count: int) -> float:
    fn()  # warm up
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return (time.perf_counter() - start) / count * 1e6


def bench_alg(
    key: SigningKey, spec: dict[str, Any], source: BundleSource, count: int
) -> tuple[float, float, float, int]:
    """Per-bundle microseconds to sign, to verify from bytes, and for the crypto alone."""
    texts: list[str] = []

    def sign() -> None:
        bundle = sign_bundle(
            spec,
            key,
            name="research_agent",
            environment="prod",
            approved_by="bench",
            approved_at=NOW,
            source=source,
        )
        texts.append(dump_bundle(bundle))

    sign_us = _per_item_us(sign, count)
    data = [t.encode() for t in texts]
    ring = Keyring([key.trusted()])
    items = iter(data * 2)
    verify_us = _per_item_us(lambda: verify_bundle(next(items), ring, now=NOW), count)
    bundle, document = parse_bundle(data[0])
    payload = signing_payload(document)
    trusted = key.trusted()
    value = bundle.signatures[0].value
    crypto_us = _per_item_us(lambda: trusted.verify(payload, value), count)
    return sign_us, verify_us, crypto_us, len(data[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    count = parser.parse_args().count
    example = REPO / "bundles" / "research_agent" / "prod.json"
    spec = json.loads(example.read_text())["spec"]
    source = BundleSource(path="examples/research_agent.yaml", commit="a" * 40)
    with tempfile.TemporaryDirectory() as tmp:
        ed = load_signing_key(generate_ed25519("ci", tmp).private_path)
    keys = {"ed25519": ed, "hmac-sha256": SigningKey.hmac("default", "bench-secret-0123456789")}
    print(f"bundles: {count} per measurement; spec {len(json.dumps(spec))} bytes JSON")
    print(f"{'alg':<12} {'sign us':>9} {'verify us':>10} {'crypto-only us':>15} {'bytes':>7}")
    for alg, key in keys.items():
        sign_us, verify_us, crypto_us, size = bench_alg(key, spec, source, count)
        print(f"{alg:<12} {sign_us:>9.1f} {verify_us:>10.1f} {crypto_us:>15.1f} {size:>7}")
    sample = example.read_bytes()
    digest_us = _per_item_us(lambda: spec_digest(spec), count)
    parse_us = _per_item_us(lambda: parse_bundle(sample), count)
    print(f"breakdown: spec digest {digest_us:.1f} us, parse+schema {parse_us:.1f} us")


if __name__ == "__main__":
    main()
