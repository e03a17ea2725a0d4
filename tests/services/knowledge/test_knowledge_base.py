"""The knowledge base on the small corpus shipped next to this test: relevance, scopes, metadata, citations."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aos_core.errors import NotFoundError
from services.knowledge import InvalidDocumentError, KnowledgeBase, chunk_text
from services.knowledge.stored import StoredKnowledgeBase
from services.storage import SqliteStateStore

CORPUS = Path(__file__).parent / "corpus"


@pytest.fixture(params=["sqlite", "stored-sqlite", "stored-azure"])
async def kb(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """The embedded file, and the StateStore-kept base (as on Azure) over SQLite and over Azurite's Blob Storage."""
    store = None
    if request.param == "sqlite":
        base: Any = KnowledgeBase(tmp_path / "knowledge.db")
    else:
        store = state_store(request.param, request, tmp_path)
        base = StoredKnowledgeBase(store)
    docs = []
    for file in sorted(CORPUS.glob("*.md")):
        text = file.read_text(encoding="utf-8")
        title = text.splitlines()[0].lstrip("# ")
        docs.append({"doc_id": file.stem, "text": text, "title": title, "metadata": {"source": file.name}})
    await base.ingest_many(docs)
    yield base
    await base.close()
    if store is not None:
        await store.close()


def state_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if kind == "stored-sqlite":
        return SqliteStateStore(tmp_path / "state.db")
    from services.storage.blob import BlobStateStore
    from services.storage.connections import resolve_storage_connection

    connection_string = request.getfixturevalue("azurite").connection_string
    connection = resolve_storage_connection("AzureWebJobsStorage", {"AzureWebJobsStorage": connection_string})
    return BlobStateStore(connection, container=f"kb-{uuid.uuid4().hex[:12]}")


@pytest.mark.parametrize("kind", ["stored-sqlite", "stored-azure"])
async def test_instances_sharing_the_store_see_each_others_changes_and_a_new_one_sees_all(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    store = state_store(kind, request, tmp_path)
    one, two = StoredKnowledgeBase(store), StoredKnowledgeBase(store)  # two instances
    await one.ingest("plan", "Quarterly hiring plan for backend engineers", title="Hiring")
    assert [h.doc_id for h in await two.search("backend hiring")] == ["plan"]  # at once, on the other
    await two.ingest("plan", "Cloud cost budget alert for idle GPU clusters", title="Costs")
    assert await one.search("backend hiring") == [] and (await one.get("plan"))["title"] == "Costs"
    for n in range(300):  # more changes than the generation document keeps: a rebuild from the documents
        await one.ingest(f"d{n}", f"document number {n} about budgets")
    assert (await two.count())["documents"] == 301
    assert await one.delete("d7") and (await two.count())["documents"] == 300
    await one.close()
    await two.close()
    fresh = StoredKnowledgeBase(store)  # an instance started after scale-in and out again: nothing was local
    assert (await fresh.count())["documents"] == 300 and (await fresh.get("plan"))["title"] == "Costs"
    await fresh.close()
    await store.close()


@pytest.mark.parametrize(("query", "expected"), [
    ("Can I fly business class on a long overnight flight?", "travel-policy"),
    ("who approves a discount above 20 percent", "pricing-strategy"),
    ("customer data breach: when do we notify regulators?", "security-incident"),
    ("how many backend engineers will we hire", "hiring-plan"),
    ("GPU clusters idle scaling budget alert", "cloud-costs"),
    ("legal review for large vendor contracts", "vendor-contracts"),
])
async def test_relevant_document_comes_first(kb: KnowledgeBase, query: str, expected: str) -> None:
    hits = await kb.search(query)
    assert hits[0].doc_id == expected
    assert hits[0].score > 0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len({h.doc_id for h in hits}) == len(hits)  # one hit per document


async def test_hits_carry_citations_snippets_and_metadata(kb: KnowledgeBase) -> None:
    hit = (await kb.search("alcohol reimbursed"))[0]
    assert hit.citation == "shared/travel-policy#0"
    assert "[alcohol]" in hit.snippet.lower()
    assert hit.metadata == {"source": "travel-policy.md"}
    assert hit.to_dict()["citation"] == hit.citation


async def test_agent_scope_is_private_and_adds_to_shared(kb: KnowledgeBase) -> None:
    await kb.ingest("board-notes", "Confidential: the board wants the acquisition of Contoso closed by June.",
                    scope="ceo")
    assert [h.doc_id for h in await kb.search("Contoso acquisition", agent_id="ceo")] == ["board-notes"]
    assert await kb.search("Contoso acquisition", agent_id="cfo") == []
    assert await kb.search("Contoso acquisition") == []
    both = await kb.search("budget approval", agent_id="ceo", limit=10)
    assert {h.scope for h in both} == {"shared"}


async def test_metadata_filter(kb: KnowledgeBase) -> None:
    await kb.ingest("travel-2025", "Old travel policy: business class for every flight.", metadata={"year": 2025})
    hits = await kb.search("business class flight", where={"year": 2025})
    assert [h.doc_id for h in hits] == ["travel-2025"]
    with pytest.raises(InvalidDocumentError, match="metadata key"):
        await kb.search("x", where={"year') OR 1=1 --": 1})


async def test_replace_and_delete(kb: KnowledgeBase) -> None:
    await kb.ingest("travel-policy", "Travel is suspended until further notice.", title="Travel freeze")
    doc = await kb.get("travel-policy")
    assert doc["title"] == "Travel freeze" and doc["chunks"] == 1
    assert await kb.search("alcohol reimbursed") == []  # the old chunks left the index
    assert (await kb.search("travel suspended"))[0].doc_id == "travel-policy"
    assert await kb.delete("travel-policy") is True
    assert await kb.delete("travel-policy") is False
    assert await kb.search("travel suspended") == []
    with pytest.raises(NotFoundError):
        await kb.get("travel-policy")


async def test_long_documents_are_chunked_and_the_right_chunk_wins(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path / "k.db", max_words=40, overlap=5)
    filler = " ".join(f"word{i}" for i in range(200))
    text = f"{filler}\n\nThe quarterly revenue target is forty million.\n\n{filler}"
    chunks = await kb.ingest("handbook", text)
    hit = (await kb.search("quarterly revenue target"))[0]
    await kb.close()
    assert chunks > 3
    assert "revenue" in hit.text and hit.seq > 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"doc_id": "", "text": "x"}, "doc_id"),
    ({"doc_id": "a/b", "text": "x"}, "doc_id"),
    ({"doc_id": "a", "text": "   "}, "text"),
    ({"doc_id": "a", "text": "x", "metadata": {"nested": {"no": 1}}}, "metadata"),
    ({"doc_id": "a", "text": "x", "scope": "bad scope"}, "scope"),
])
async def test_bad_documents_are_rejected_and_change_nothing(kb: KnowledgeBase, kwargs: dict, message: str) -> None:
    before = await kb.count()
    with pytest.raises(InvalidDocumentError, match=message):
        await kb.ingest(**kwargs)
    assert await kb.count() == before


async def test_one_bad_document_in_a_batch_stores_none(kb: KnowledgeBase) -> None:
    before = await kb.count()
    with pytest.raises(InvalidDocumentError, match=r"documents\[1\]"):
        await kb.ingest_many([{"doc_id": "ok", "text": "fine"}, {"doc_id": "bad", "text": ""}])
    assert await kb.count() == before


@pytest.mark.parametrize("query", ["", "   ", "?!", 'AND OR NOT "'])
async def test_queries_without_words_or_with_fts_syntax(kb: KnowledgeBase, query: str) -> None:
    if any(c.isalnum() for c in query):
        assert isinstance(await kb.search(query), list)  # FTS operators are just words here
    else:
        with pytest.raises(InvalidDocumentError, match="at least one word"):
            await kb.search(query)


def test_chunking_keeps_paragraphs_and_overlaps() -> None:
    text = "\n\n".join(" ".join(f"p{p}w{i}" for i in range(30)) for p in range(4))
    chunks = chunk_text(text, max_words=70, overlap=10)
    assert [len(c.text.split()) for c in chunks] == [60, 70]  # p0+p1, then 10 words of p1 + p2 + p3
    assert chunks[1].text.split()[:10] == chunks[0].text.split()[-10:]
    assert chunk_text("one two", max_words=5, overlap=0)[0].text == "one two"
    with pytest.raises(ValueError):
        chunk_text("x", max_words=5, overlap=5)


def test_the_azure_backends_keep_the_knowledge_base_in_storage_and_sqlite_in_a_file(tmp_path: Path) -> None:
    from aos_core import AOSConfig
    from aos_core.runtime import build_knowledge_base
    from services.storage import InMemoryStateStore

    store = InMemoryStateStore()
    stored = build_knowledge_base(AOSConfig(data_dir=tmp_path, storage={"backend": "azure"}), store)
    assert isinstance(stored, StoredKnowledgeBase) and stored.store is store
    local = build_knowledge_base(AOSConfig(data_dir=tmp_path), store)
    assert isinstance(local, KnowledgeBase) and local.db.path == str(tmp_path / "knowledge.db")
