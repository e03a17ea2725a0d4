"""Inference and knowledge benchmarks: prints JSON lines, one metric each.

    python bench/inference.py [--small]

- uncached vs cached inference latency through the local scoring server (real HTTP on 127.0.0.1, the Azure ML
  scoring wire format, RuleBasedReasoner behind it; uncached = a distinct prompt per call)
- knowledge base ingest rate and search queries/s over 10,000 chunks (1,000 with --small), SQLite FTS5 BM25
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

# The repo root instead of bench/ (a bench module named like a stdlib one, e.g. bench/http.py, would shadow it).
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from services.knowledge import KnowledgeBase  # noqa: E402
from services.ml import CachedReasoner, ReasoningRequest  # noqa: E402
from services.ml.endpoints import AzureMLEndpointReasoner  # noqa: E402
from services.ml.local_server import LocalScoringServer  # noqa: E402

WORDS = ("revenue growth margin churn pricing discount contract vendor hiring budget cloud gpu training risk "
         "security breach incident audit compliance regulation market expansion europe asia product launch "
         "roadmap customer support latency capacity forecast quarter board strategy acquisition partner").split()


def emit(metric: str, value: float, unit: str, **extra: object) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 3), "unit": unit, **extra}), flush=True)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench_inference(calls: int) -> None:
    with LocalScoringServer() as server:
        remote = AzureMLEndpointReasoner(f"{server.url}/score", attempts=1)
        reasoner = CachedReasoner(remote)
        await reasoner.reason(ReasoningRequest("warm up the connection"))
        uncached = []
        for i in range(calls):
            start = time.perf_counter()
            await reasoner.reason(ReasoningRequest(f"plan {i}: growth versus risk", adapter="ceo@1.0.0"))
            uncached.append((time.perf_counter() - start) * 1000)
        cached = []
        request = ReasoningRequest("plan 0: growth versus risk", adapter="ceo@1.0.0")
        for _ in range(calls):
            start = time.perf_counter()
            await reasoner.reason(request)
            cached.append((time.perf_counter() - start) * 1000)
        await reasoner.close()
    for name, samples in (("uncached", uncached), ("cached", cached)):
        emit(f"inference_{name}_ms_p50", statistics.median(samples), "ms", calls=calls)
        emit(f"inference_{name}_ms_p99", percentile(samples, 0.99), "ms", calls=calls)
    emit("inference_cache_speedup", statistics.median(uncached) / statistics.median(cached), "x")


async def bench_knowledge(chunks: int, queries: int) -> None:
    rng = random.Random(7)
    # A Zipf-distributed vocabulary of 5,000 terms (business words first, then synthetic ones), like real text:
    # a few words are everywhere, most are rare.
    vocab = WORDS + [f"term{i}" for i in range(5_000 - len(WORDS))]
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    docs = [{"doc_id": f"doc-{i}", "title": " ".join(rng.choices(vocab, weights, k=3)),
             "text": " ".join(rng.choices(vocab, weights, k=50)), "metadata": {"n": i}}
            for i in range(chunks)]  # 50 words each: one chunk per document
    with tempfile.TemporaryDirectory() as folder:
        kb = KnowledgeBase(Path(folder) / "knowledge.db", max_words=60, overlap=0)
        start = time.perf_counter()
        for i in range(0, len(docs), 500):
            await kb.ingest_many(docs[i:i + 500])
        elapsed = time.perf_counter() - start
        count = (await kb.count())["chunks"]
        emit("knowledge_ingest_chunks_per_s", count / elapsed, "chunks/s", chunks=count)
        # Three words taken from one stored document: "find the passage that says ...".
        questions = [" ".join(rng.sample(rng.choice(docs)["text"].split(), 3)) for _ in range(queries)]
        start = time.perf_counter()
        for question in questions:
            await kb.search(question, limit=5)
        elapsed = time.perf_counter() - start
        emit("knowledge_search_queries_per_s", queries / elapsed, "queries/s", chunks=count)
        await kb.close()


async def main(small: bool) -> None:
    await bench_inference(100 if small else 1000)
    await bench_knowledge(1_000 if small else 10_000, 100 if small else 1000)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick smoke run")
    asyncio.run(main(parser.parse_args().small))
