"""A few in-context tasks for real models, from the task-vector literature (antonyms, English to
French, country to capital, and two formats), as (x, y) pairs; ``default_tasks`` picks the
organism's own tasks when the SAE is the organism's."""

from __future__ import annotations

from typing import Any

ANTONYMS = [
    ("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("up", "down"), ("old", "young"),
    ("dark", "light"), ("early", "late"), ("hard", "soft"), ("high", "low"), ("long", "short"), ("open", "closed"),
    ("rich", "poor"), ("strong", "weak"), ("wet", "dry"), ("full", "empty"), ("good", "bad"), ("near", "far"),
    ("thick", "thin"), ("true", "false"), ("clean", "dirty"), ("loud", "quiet"), ("heavy", "light"),
    ("inside", "outside"),
]
ENGLISH_FRENCH = [
    ("cat", "chat"), ("dog", "chien"), ("house", "maison"), ("water", "eau"), ("book", "livre"), ("sun", "soleil"),
    ("moon", "lune"), ("tree", "arbre"), ("car", "voiture"), ("bread", "pain"), ("milk", "lait"), ("red", "rouge"),
    ("green", "vert"), ("black", "noir"), ("white", "blanc"), ("friend", "ami"), ("city", "ville"), ("day", "jour"),
    ("night", "nuit"), ("fire", "feu"), ("sea", "mer"), ("school", "école"), ("apple", "pomme"), ("flower", "fleur"),
]
COUNTRY_CAPITAL = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
    ("China", "Beijing"), ("Russia", "Moscow"), ("Egypt", "Cairo"), ("Greece", "Athens"), ("Norway", "Oslo"),
    ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Poland", "Warsaw"), ("Austria", "Vienna"),
    ("Ireland", "Dublin"), ("Portugal", "Lisbon"), ("Canada", "Ottawa"), ("Kenya", "Nairobi"), ("Peru", "Lima"),
    ("Chile", "Santiago"), ("Cuba", "Havana"), ("Hungary", "Budapest"), ("Denmark", "Copenhagen"),
    ("Thailand", "Bangkok"),
]
WORDS = ["apple", "river", "music", "garden", "window", "yellow", "mountain", "pencil", "summer", "doctor", "silver",
         "forest", "candle", "rabbit", "ocean", "winter", "orange", "teacher", "bottle", "planet"]

BUILTIN_TASKS: dict[str, list[tuple[str, str]]] = {
    "antonym": ANTONYMS,
    "english_french": ENGLISH_FRENCH,
    "country_capital": COUNTRY_CAPITAL,
    "uppercase": [(w, w.upper()) for w in WORDS],
    "first_letter": [(w, w[0]) for w in WORDS],
}


def default_tasks(sae: Any = None) -> dict[str, list[tuple[str, str]]]:
    """The organism's ICL tasks for the organism's SAE (but ``copy``, its zero-shot default),
    else ``BUILTIN_TASKS``."""
    sae = getattr(sae, "sae", sae)
    if sae is not None and getattr(sae, "metadata", {}).get("model_name") == "saewidgets-organism":
        from ..model_organism import organism_ground_truth

        return {name: list(pairs) for name, pairs in organism_ground_truth().icl_tasks.items() if name != "copy"}
    return {name: list(pairs) for name, pairs in BUILTIN_TASKS.items()}
