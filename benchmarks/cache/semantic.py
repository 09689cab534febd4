"""Precision and recall of the semantic cache on the labelled pairs, by threshold.

``python -m benchmarks.cache.semantic`` embeds both prompts of every pair in
``data/semantic_pairs.jsonl`` with the emulator's embeddings, and with the live API's too
when ``HOLYSHEEP_API_KEY`` is set (``--embedding-model``, default the cache's), then for
each threshold counts:

* a hit on a ``same`` pair: a call saved (true positive);
* a hit on a ``different`` pair: a WRONG answer served from the cache (false positive);

precision = TP / (TP + FP), recall = TP / same pairs, and a score TP - W * FP where a wrong
answer costs ``W`` (default 10) times what a miss costs. The recommended threshold is the
one with the best score (the highest such threshold on a tie); with no positive score, no
threshold is safe for those embeddings.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

from holysheep_core import HolySheepClient, ModelPrice, PriceTable
from holysheep_core.cache import DEFAULT_SIMILARITY_THRESHOLD
from holysheep_core.cache.keys import same_specifics
from holysheep_core.emulator import Emulator

PAIRS = Path(__file__).parent / "data" / "semantic_pairs.jsonl"
THRESHOLDS = [round(0.50 + 0.01 * i, 2) for i in range(51)]


def _cosine(a: list[float], b: list[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(math.fsum(x * x for x in a))
    nb = math.sqrt(math.fsum(x * x for x in b))
    return dot / (na * nb) if na and nb else 0.0


def similarities(client: HolySheepClient, model: str, rows: list[dict]) -> list[float]:
    texts = sorted({r["a"] for r in rows} | {r["b"] for r in rows})
    vectors = client.embeddings(model=model, input=texts, batch_size=128).data
    by_text = {t: v.embedding for t, v in zip(texts, vectors, strict=True)}
    return [_cosine(by_text[r["a"]], by_text[r["b"]]) for r in rows]


def guarded(rows: list[dict], sims: list[float]) -> list[float]:
    """What the cache compares: a pair whose numbers or negations differ never matches."""
    return [s if same_specifics(r["a"], r["b"]) else -1.0 for r, s in zip(rows, sims, strict=True)]


def sweep(rows: list[dict], sims: list[float], weight: float) -> list[dict]:
    same = sum(r["label"] == "same" for r in rows)
    out = []
    for t in THRESHOLDS:
        tp = sum(r["label"] == "same" and s >= t for r, s in zip(rows, sims, strict=True))
        fp = sum(r["label"] == "different" and s >= t for r, s in zip(rows, sims, strict=True))
        out.append(
            {
                "threshold": t,
                "tp": tp,
                "fp": fp,
                "precision": tp / (tp + fp) if tp + fp else None,
                "recall": tp / same,
                "score": tp - weight * fp,
            }
        )
    return out


def by_kind(rows: list[dict], sims: list[float], t: float) -> dict[str, str]:
    kinds: dict[str, list[int]] = {}
    for r, s in zip(rows, sims, strict=True):
        k = kinds.setdefault(r["kind"], [0, 0])
        k[0] += s >= t
        k[1] += 1
    return {k: f"{hit}/{n}" for k, (hit, n) in kinds.items()}


def report(name: str, rows: list[dict], sims: list[float], weight: float) -> dict:
    curve = sweep(rows, sims, weight)
    best = max(curve, key=lambda p: (p["score"], p["threshold"]))
    print(f"\n## {name}")
    print("| threshold | hits on same (TP) | hits on different (FP) | precision | recall | score |")
    print("|---|---|---|---|---|---|")
    for p in curve:
        if p["threshold"] in (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0) or p is best:
            prec = "-" if p["precision"] is None else f"{p['precision']:.2f}"
            print(
                f"| {p['threshold']:.2f} | {p['tp']} | {p['fp']} | {prec} | "
                f"{p['recall']:.2f} | {p['score']:g} |"
            )
    d = DEFAULT_SIMILARITY_THRESHOLD
    print(f"pairs over the default threshold {d} by kind: {by_kind(rows, sims, d)}")
    if best["score"] <= 0:
        print(
            f"no threshold scores above 0 with W={weight:g}: these embeddings cannot tell "
            "the near-misses apart; do not turn semantic matching on with them"
        )
    else:
        print(f"best threshold (W={weight:g}): {best['threshold']:.2f}")
    return {"curve": curve, "best": best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weight", type=float, default=10.0, help="cost of a wrong hit, in misses")
    ap.add_argument("--embedding-model", default="text-embedding-3-small")
    ap.add_argument("--json", type=Path, help="write the curves here")
    args = ap.parse_args()
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()]
    same = sum(r["label"] == "same" for r in rows)
    print(f"{len(rows)} pairs: {same} same meaning, {len(rows) - same} different")
    results = {}
    free = PriceTable().with_prices({args.embedding_model: ModelPrice.of(0, 0)})
    with (
        Emulator() as url,
        HolySheepClient(api_key="hs-bench", base_url=url, prices=free) as client,
    ):
        sims = similarities(client, args.embedding_model, rows)
        results["emulator_raw"] = report(
            "emulator embeddings, cosine alone", rows, sims, args.weight
        )
        results["emulator"] = report(
            "emulator embeddings, as the cache matches (cosine + numbers/negations check)",
            rows,
            guarded(rows, sims),
            args.weight,
        )
    if os.environ.get("HOLYSHEEP_API_KEY"):
        with HolySheepClient() as client:
            sims = similarities(client, args.embedding_model, rows)
            results["live_raw"] = report(
                f"live {args.embedding_model}, cosine alone", rows, sims, args.weight
            )
            results["live"] = report(
                f"live {args.embedding_model}, as the cache matches",
                rows,
                guarded(rows, sims),
                args.weight,
            )
    else:
        print("\n(HOLYSHEEP_API_KEY is not set: live embeddings not measured)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
