"""Corpus sources for activation collection: documents as a deterministic stream of strings.

``open_corpus(corpus)`` accepts a list of strings, a local ``.txt`` (one document a line),
``.jsonl`` / ``.jsonl.gz`` (a JSON string, or an object with a text field, a line) or
``.parquet`` file, a Hugging Face ``datasets`` dataset (an object, or a name loaded with
``streaming=True``), or ``None`` for the model organism's own held-out corpus. Iterating a
``Corpus`` twice gives the same documents in the same order: a resumed collection skips
what it already counted by position. ``chunks(...)`` cuts tokenised documents into rows.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

TEXT_FIELDS = ("text", "content", "document", "sentence")


@dataclass
class Corpus:
    """A re-iterable stream of documents with a name and a fingerprint (for resuming)."""

    name: str
    fingerprint: str
    make: Callable[[], Iterator[str]]
    length: int | None = None  # documents, when known

    def __iter__(self) -> Iterator[str]:
        for i, doc in enumerate(self.make()):
            if not isinstance(doc, str):
                raise ValueError(f"document {i} of {self.name} is {type(doc).__name__}, not text: give strings "
                                 "(or name the text column with text_field=)")
            yield doc


def _digest(*parts: Any) -> str:
    h = hashlib.sha1()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def _field(record: Any, text_field: str | None, where: str) -> str:
    if isinstance(record, str):
        return record
    if isinstance(record, dict):
        if text_field is not None:
            if text_field not in record:
                raise ValueError(f"{where} has no field {text_field!r} (fields: {sorted(record)[:10]}); "
                                 "pass text_field= with the name of the text column")
            return record[text_field]
        for name in TEXT_FIELDS:
            if name in record:
                return record[name]
        raise ValueError(f"{where} has no text field (looked for {TEXT_FIELDS}; fields: {sorted(record)[:10]}); "
                         "pass text_field=")
    raise ValueError(f"{where} is {type(record).__name__}; expected a string or an object with a text field")


def _file_fingerprint(path: Path) -> str:
    stat = path.stat()
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    return _digest(path.name, stat.st_size, head)


def _text_file(path: Path) -> Corpus:
    def make() -> Iterator[str]:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line.strip():
                    yield line
    return Corpus(str(path), _file_fingerprint(path), make)


def _jsonl_file(path: Path, text_field: str | None) -> Corpus:
    opener = gzip.open if path.suffix == ".gz" else open

    def make() -> Iterator[str]:
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path} line {n} is not JSON ({error.msg}): a .jsonl file has one JSON "
                                     "value a line") from None
                yield _field(record, text_field, f"{path} line {n}")
    return Corpus(str(path), _file_fingerprint(path), make)


def _parquet_file(path: Path, text_field: str | None) -> Corpus:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError("reading .parquet needs pyarrow: pip install pyarrow (or saewidgets[atlas])") from None
    schema = pq.read_schema(path)
    column = text_field or next((c for c in TEXT_FIELDS if c in schema.names), None)
    if column is None or column not in schema.names:
        raise ValueError(f"{path} has no column {text_field or TEXT_FIELDS!r} (columns: {schema.names}); "
                         "pass text_field=")
    length = pq.ParquetFile(path).metadata.num_rows

    def make() -> Iterator[str]:
        reader = pq.ParquetFile(path)
        for batch in reader.iter_batches(columns=[column], batch_size=1024):
            yield from batch.column(0).to_pylist()
    return Corpus(f"{path}:{column}", _file_fingerprint(path), make, length)


def _dataset(data: Any, text_field: str | None) -> Corpus:
    """A ``datasets.Dataset`` / ``IterableDataset`` (streamed row by row; nothing is materialised)."""
    features = getattr(data, "features", None) or {}
    names = list(features) if features else []
    column = text_field or next((c for c in TEXT_FIELDS if c in names), None)
    if names and (column is None or column not in names):
        raise ValueError(f"the dataset has no column {text_field or TEXT_FIELDS!r} (columns: {names}); "
                         "pass text_field=")
    info = getattr(data, "info", None)
    fingerprint = getattr(data, "_fingerprint", None) or _digest(getattr(info, "dataset_name", ""), names,
                                                                   getattr(info, "config_name", ""))
    try:
        length = len(data)
    except TypeError:
        length = None

    def make() -> Iterator[str]:
        for n, record in enumerate(data):
            yield _field(record, column, f"dataset row {n}")
    return Corpus(f"dataset {getattr(info, 'dataset_name', None) or type(data).__name__}", str(fingerprint), make,
                  length)


def _named_dataset(name: str, split: str, text_field: str | None, config: str | None) -> Corpus:
    try:
        import datasets
    except ImportError:
        raise ValueError(f"{name!r} is neither a file nor a list: loading a Hugging Face dataset by name needs "
                         "`pip install datasets` (or saewidgets[atlas])") from None
    try:
        data = datasets.load_dataset(name, config, split=split, streaming=True)
    except Exception as error:  # the hub, a local folder or script that fails
        raise ValueError(f"could not load the dataset {name!r} (split {split!r}): {error}. Give a local file, a "
                         "folder `datasets` can read, or a list of strings") from None
    corpus = _dataset(data, text_field)
    corpus.name, corpus.fingerprint = f"dataset {name}[{split}]", _digest(name, config, split, corpus.fingerprint)
    return corpus


def open_corpus(corpus: Any, *, text_field: str | None = None, split: str = "train", config: str | None = None,
                organism: bool = False) -> Corpus:
    """``corpus`` as a ``Corpus`` (see the module's docstring); ``None`` means the organism's corpus
    when ``organism`` (the model is the built-in organism), else a ValueError."""
    if isinstance(corpus, Corpus):
        return corpus
    if corpus is None:
        if not organism:
            raise ValueError("corpus= is required: a list of strings, a .txt/.jsonl/.parquet file or a Hugging "
                             "Face dataset (only the built-in organism has a default corpus)")
        from ..model_organism import organism_corpus

        docs = organism_corpus()
        return Corpus("sw.organism_corpus()", _digest("organism", len(docs), *docs[:16]), lambda: iter(docs),
                      len(docs))
    if isinstance(corpus, (str, Path)):
        path = Path(corpus)
        if path.is_file():
            suffixes = "".join(path.suffixes[-2:]).lower()
            if suffixes.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".json.gz")) or path.suffix == ".jsonl":
                return _jsonl_file(path, text_field)
            if path.suffix.lower() == ".parquet":
                return _parquet_file(path, text_field)
            if path.suffix.lower() in (".txt", ".text", ".md"):
                return _text_file(path)
            raise ValueError(f"{path}: unknown corpus file type {path.suffix!r}; use .txt (a document a line), "
                             ".jsonl, .jsonl.gz or .parquet")
        if isinstance(corpus, str) and not path.suffix:
            return _named_dataset(corpus, split, text_field, config)
        raise ValueError(f"corpus file {str(corpus)!r} does not exist")
    if hasattr(corpus, "features") and hasattr(corpus, "__iter__") and type(corpus).__module__.startswith("datasets"):
        return _dataset(corpus, text_field)
    if isinstance(corpus, Sequence) and not isinstance(corpus, (bytes, bytearray)):
        docs = list(corpus)
        bad = next((i for i, d in enumerate(docs) if not isinstance(d, str)), None)
        if bad is not None:
            raise ValueError(f"corpus[{bad}] is {type(docs[bad]).__name__}; a corpus list holds strings")
        if not docs:
            raise ValueError("the corpus is empty: give at least one document")
        return Corpus(f"list of {len(docs)} documents", _digest(len(docs), *docs[:16], *docs[-4:]),
                      lambda: iter(docs), len(docs))
    if isinstance(corpus, Iterable):
        raise ValueError("a one-shot iterator (a generator) cannot be resumed or re-read: give a list, a file or a "
                         "datasets object")
    raise ValueError(f"corpus must be a list of strings, a file path or a datasets dataset; got {type(corpus).__name__}")


@dataclass(frozen=True)
class Chunk:
    """One row of the collection: ``ids`` of document ``doc`` from token ``start`` (BOS not counted)."""

    index: int  # global chunk number, the resume cursor
    doc: int
    start: int
    ids: tuple[int, ...]
    bos: bool  # ids[0] is a BOS token added here (not counted, not shown)


def chunks(corpus: Corpus, tokenizer: Any, seq_len: int, prepend_bos: bool, skip: int = 0,
           batch_docs: int = 256) -> Iterator[Chunk]:
    """Tokenise documents (in groups of ``batch_docs``) and cut each into rows of at most
    ``seq_len`` tokens (a BOS first on every row when ``prepend_bos``); skip the first ``skip`` rows."""
    bos_id = tokenizer.bos_token_id if prepend_bos else None
    body = seq_len - (bos_id is not None)
    index = 0
    docs = iter(corpus)
    doc_no = 0
    while True:
        group = [d for _, d in zip(range(batch_docs), docs)]
        if not group:
            return
        encoded = tokenizer(group, add_special_tokens=False, verbose=False)["input_ids"]
        for ids in encoded:
            for start in range(0, len(ids), body):
                if index >= skip:
                    piece = ids[start:start + body]
                    row = (bos_id, *piece) if bos_id is not None else tuple(piece)
                    yield Chunk(index, doc_no, start, tuple(int(t) for t in row), bos_id is not None)
                index += 1
            doc_no += 1
