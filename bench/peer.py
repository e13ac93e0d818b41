"""The peer recipe, LlamaIndex's documented default, run as a subprocess of bench/compare.py so that
its memory is its own:

    python bench/peer.py ingest CORPUS PERSIST_DIR QUESTIONS_JSON SPAWNED_AT   # prints JSON
    python bench/peer.py serve PERSIST_DIR PORT                                # retrieval over HTTP

`ingest`: SimpleDirectoryReader(recursive) -> VectorStoreIndex.from_documents on a FaissVectorStore
(IndexFlatL2(384)) with HuggingFaceEmbedding of the same bundled MiniLM, the default splitter
(SentenceSplitter, 1,024 tokens, overlap 20), then `storage_context.persist`. No global Settings:
the embed model is passed in and no LLM is ever asked for. Then it times
`index.as_retriever(similarity_top_k=5).retrieve(q)` in-process over the bench's questions.

`serve`: the persisted index loaded back, its retriever behind POST /retrieve on 127.0.0.1. The
recipe has no offline answerer, so this is what it can serve: retrieval over HTTP.
"""

# No `from __future__ import annotations`: FastAPI must resolve the local request model below.
import json
import sys
import time

# Imported before anything heavy, so that `setup` below counts the imports as the recipe's cost.
from common import percentiles_ms, timed

DIMENSION = 384
TOP_K = 5


def embed_model():
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from rag.embedding.model import bundled_model_path

    return HuggingFaceEmbedding(model_name=str(bundled_model_path()), device="cpu")


def ingest(corpus: str, persist_dir: str, questions_file: str, spawned_at: float) -> dict:
    began = time.time()
    import faiss
    from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
    from llama_index.core.schema import MetadataMode
    from llama_index.vector_stores.faiss import FaissVectorStore

    model = embed_model()
    loaded = time.time()
    documents = SimpleDirectoryReader(corpus, recursive=True).load_data()
    read = time.time()
    storage = StorageContext.from_defaults(vector_store=FaissVectorStore(faiss.IndexFlatL2(DIMENSION)))
    index = VectorStoreIndex.from_documents(documents, storage_context=storage, embed_model=model)
    indexed = time.time()
    index.storage_context.persist(persist_dir=persist_dir)
    persisted = time.time()

    # What the model read of each node: HuggingFaceEmbedding embeds the node's EMBED-mode content
    # (text plus the metadata not excluded from embedding, here file_path) truncated to the window.
    tokenizer = model._model.tokenizer
    window = model.max_length
    nodes = list(index.docstore.docs.values())
    lengths = [len(tokenizer(n.get_content(metadata_mode=MetadataMode.EMBED))["input_ids"]) for n in nodes]

    retriever = index.as_retriever(similarity_top_k=TOP_K)
    with open(questions_file) as f:
        questions = json.load(f)
    p50, p95 = percentiles_ms(timed(retriever.retrieve, questions))
    return {
        "documents": len(documents),
        "chunks": len(nodes),
        "word_pieces": sum(lengths),
        "tokens_embedded": sum(min(n, window) for n in lengths),
        "truncated_chunks": sum(n > window for n in lengths),
        "window": window,
        "wall_s": persisted - spawned_at,
        "phases_s": {
            "python start": began - spawned_at,
            "imports + model load": loaded - began,
            "read": read - loaded,
            "split + embed + index": indexed - read,
            "persist": persisted - indexed,
        },
        "ingest_in_process_s": indexed - loaded,
        "retrieval_p50_ms": p50,
        "retrieval_p95_ms": p95,
    }


def serve(persist_dir: str, port: int) -> None:
    import uvicorn
    from fastapi import FastAPI
    from llama_index.core import StorageContext, load_index_from_storage
    from llama_index.vector_stores.faiss import FaissVectorStore
    from pydantic import BaseModel

    storage = StorageContext.from_defaults(
        vector_store=FaissVectorStore.from_persist_dir(persist_dir), persist_dir=persist_dir)
    retriever = load_index_from_storage(storage, embed_model=embed_model()).as_retriever(similarity_top_k=TOP_K)

    class Query(BaseModel):
        query: str

    app = FastAPI()

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/retrieve")
    def retrieve(body: Query) -> dict:
        hits = retriever.retrieve(body.query)
        return {"results": [{"id": h.node.node_id, "score": h.score, "text": h.node.get_content()} for h in hits]}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "ingest":
        corpus, persist_dir, questions_file, spawned_at = rest
        print(json.dumps(ingest(corpus, persist_dir, questions_file, float(spawned_at))))
    elif mode == "serve":
        serve(rest[0], int(rest[1]))
    else:
        raise SystemExit(f"unknown mode {mode!r}: expected ingest or serve")
