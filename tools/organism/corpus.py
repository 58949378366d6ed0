"""Seeded synthetic corpus: stories, definitions, repeat sentences and `x -> y` ICL blocks."""

from __future__ import annotations

import random
from collections.abc import Iterator

from . import templates as T
from .icl import TASKS, sample_block
from .vocab import CATEGORY_NOUN, CONCEPTS, COUNT_WORDS, HELD_OUT

DOC_KINDS: dict[str, float] = {"story": 0.52, "definition": 0.13, "repeat": 0.05, "icl": 0.30}
_ARTICLE_EXCEPTIONS = {"ukulele": "a", "one": "a"}


def article(word: str) -> str:
    """English indefinite article for a word."""
    return _ARTICLE_EXCEPTIONS.get(word, "an" if word[0].lower() in "aeiou" else "a")


def is_held_out(word: str) -> bool:
    """True for words whose definitions are withheld from training."""
    return any(word in ws for ws in HELD_OUT.values())


def _fill(template: str, word: str) -> str:
    return template.replace("{a}", article(word)).replace("{w}", word)


def _with_tail(clause: str, tail: str) -> str:
    end = clause[-1] if clause[-1] in "?!" else "."
    body = clause[:-1] if clause[-1] in "?!" else clause
    return body + tail + end


def _tail(rng: random.Random, concept: str, word: str) -> str:
    if rng.random() < 0.15 and not is_held_out(word):
        art, noun = CATEGORY_NOUN[concept]
        return rng.choice(T.NAMED_TAILS).replace("{a}", art).replace("{n}", noun)
    return rng.choice(T.TAILS[concept])


def concept_sentence(rng: random.Random, concept: str, word: str) -> str:
    """One sentence using `word` in a category-specific or generic context, maybe with a tail."""
    if rng.random() < 0.6:
        clause = _fill(rng.choice(T.CONTEXTS[concept]), word)
    else:  # generic context; sometimes quoted, so bare forms ("crimson") meet their category too
        quoted = f'"{word}"' if rng.random() < 0.35 else word
        clause = rng.choice(T.GENERIC).replace("{w}", quoted)
    tail = _tail(rng, concept, word) if rng.random() < 0.55 else ""
    return _with_tail(clause, tail)


def mixed_sentence(rng: random.Random) -> str:
    """A sentence with several concepts, e.g. a name, a colour and a vehicle."""
    out = rng.choice(T.MIXED)
    for concept, words in CONCEPTS.items():
        word = rng.choice(words)
        out = out.replace("{a_" + concept + "}", article(word)).replace("{" + concept + "}", word)
    return out[0].upper() + out[1:]


def list_sentence(rng: random.Random, concept: str) -> str:
    """A generic lead and 2-4 words of one concept: `We talked about teal, amber and navy.`"""
    words = rng.sample(CONCEPTS[concept], rng.randint(2, 4))
    if rng.random() < 0.25:
        words = [f'"{w}"' for w in words]
    items = ", ".join(words[:-1]) + " and " + words[-1]
    return rng.choice(T.LISTS).replace("{ws}", items)


def compound_sentence(rng: random.Random, concept: str) -> str:
    """A word followed by a category-specific noun: `I like crimson paint.`"""
    x = rng.choice(CONCEPTS[concept]) + rng.choice(T.COMPOUNDS[concept])
    return rng.choice(T.COMPOUND_FRAMES).replace("{x}", x)


# Story mix: sentence kind -> probability ("concept" takes the rest).
STORY_MIX: dict[str, float] = {"mixed": 0.1, "list": 0.4, "compound": 0.2}
TOPIC_P = 0.8  # chance that a story keeps to one concept ...
TOPIC_STICK = 0.85  # ... for this share of its sentences, so a concept predicts more of itself


def story(rng: random.Random) -> str:
    """A paragraph of 2-5 sentences, often about one concept."""
    topic = rng.choice(list(CONCEPTS)) if rng.random() < TOPIC_P else None
    sentences = []
    for _ in range(rng.randint(2, 5)):
        concept = topic if topic and rng.random() < TOPIC_STICK else rng.choice(list(CONCEPTS))
        r, edge = rng.random(), 0.0
        for kind, p in STORY_MIX.items():  # noqa: B007 (used after the loop)
            edge += p
            if r < edge:
                break
        else:
            kind = "concept"
        if kind == "mixed":
            sentences.append(mixed_sentence(rng))
        elif kind == "list":
            sentences.append(list_sentence(rng, concept))
        elif kind == "compound":
            sentences.append(compound_sentence(rng, concept))
        else:
            sentences.append(concept_sentence(rng, concept, rng.choice(CONCEPTS[concept])))
    return " ".join(sentences)


def definition(rng: random.Random, concept: str, word: str) -> str:
    """A definition sentence such as `The word "crimson" means a colour.`"""
    art, noun = CATEGORY_NOUN[concept]
    return rng.choice(T.DEFINITIONS).replace("{w}", word).replace("{a}", art).replace("{n}", noun)


def definitions(rng: random.Random) -> str:
    """1-3 definition sentences of words that are not held out."""
    out = []
    for _ in range(rng.randint(1, 3)):
        concept = rng.choice(list(CONCEPTS))
        word = rng.choice([w for w in CONCEPTS[concept] if not is_held_out(w)])
        out.append(definition(rng, concept, word))
    return " ".join(out)


def repeat(rng: random.Random, word: str | None = None, k: int | None = None) -> str:
    """`Repeat "crimson" three times: "crimson" "crimson" "crimson"`."""
    if word is None:
        if rng.random() < 0.8:
            word = rng.choice(CONCEPTS[rng.choice(list(CONCEPTS))])
        else:
            word = rng.choice(T.FILLER_WORDS)
    k = k or rng.randint(2, 5)
    copies = "".join(f' "{word}"' for _ in range(k))
    return rng.choice(T.REPEATS).format(w=word, k=COUNT_WORDS[k], r=copies)


def document(rng: random.Random) -> str:
    """One document of a random kind."""
    kind = rng.choices(list(DOC_KINDS), list(DOC_KINDS.values()))[0]
    if kind == "story":
        return story(rng)
    if kind == "definition":
        return definitions(rng)
    if kind == "repeat":
        return repeat(rng)
    return sample_block(rng, TASKS)


def iter_documents(seed: int) -> Iterator[str]:
    """An endless, seeded stream of documents."""
    rng = random.Random(seed)
    while True:
        yield document(rng)


def generate_corpus(n_docs: int, seed: int = 0) -> list[str]:
    """`n_docs` documents from the seeded stream."""
    stream = iter_documents(seed)
    return [next(stream) for _ in range(n_docs)]
