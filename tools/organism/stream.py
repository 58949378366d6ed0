"""Token streams and training / evaluation windows."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer

from .corpus import generate_corpus
from .tokenizer import EOT


def token_stream(docs: list[str], tok: Tokenizer) -> torch.Tensor:
    """Documents joined into one stream, each preceded by `<|endoftext|>`."""
    eot = tok.token_to_id(EOT)
    ids: list[int] = []
    for enc in tok.encode_batch(docs):
        ids.append(eot)
        ids.extend(enc.ids)
    return torch.tensor(ids, dtype=torch.long)


def sample_windows(stream: torch.Tensor, n: int, length: int, gen: torch.Generator) -> torch.Tensor:
    """`n` random windows of `length` tokens."""
    starts = torch.randint(0, len(stream) - length, (n,), generator=gen)
    return torch.stack([stream[s:s + length] for s in starts.tolist()])


def corpus_windows(seed: int, n_windows: int, tok: Tokenizer, length: int = 128) -> torch.Tensor:
    """Random windows of a fresh corpus sample drawn with `seed`."""
    docs = generate_corpus(n_windows * length // 20, seed)
    gen = torch.Generator().manual_seed(seed)
    return sample_windows(token_stream(docs, tok), n_windows, length, gen)
