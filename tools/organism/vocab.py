"""Word lists of the model organism's world: concepts, held-out words, task tables."""

from __future__ import annotations

# Concept -> words. Each word is trained to be a single BPE token, both as " word" and "word".
CONCEPTS: dict[str, list[str]] = {
    "colour": ["red", "blue", "green", "yellow", "purple", "pink", "brown", "black", "white",
               "grey", "crimson", "violet", "scarlet", "silver", "teal", "beige", "maroon", "navy",
               "turquoise", "indigo", "magenta", "cyan", "lilac", "khaki", "ivory", "bronze",
               "golden", "emerald", "coral", "azure", "ochre", "burgundy", "amber", "mauve",
               "cobalt", "sepia"],
    "animal": ["cat", "dog", "horse", "cow", "sheep", "lion", "tiger", "bear", "wolf", "fox",
               "rabbit", "mouse", "eagle", "owl", "snake", "whale", "goat", "pig", "duck", "frog",
               "deer", "monkey", "zebra", "giraffe", "elephant", "camel", "donkey", "squirrel",
               "badger", "otter", "beaver", "penguin", "parrot", "hedgehog", "dolphin", "shark"],
    "number": ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
               "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
               "eighteen", "nineteen", "twenty", "thirty", "forty", "fifty", "sixty", "seventy",
               "eighty", "ninety", "zero", "hundred", "thousand", "dozen", "million"],
    "food": ["bread", "cheese", "apple", "rice", "soup", "cake", "butter", "honey", "pasta",
             "pizza", "salad", "carrot", "potato", "banana", "cookie", "egg", "lemon", "cherry",
             "grape", "mango", "melon", "onion", "garlic", "tomato", "bacon", "sausage", "yogurt",
             "porridge", "pancake", "muffin", "biscuit", "chocolate", "sandwich", "cabbage",
             "spinach", "pear"],
    "city": ["Paris", "London", "Tokyo", "Rome", "Berlin", "Madrid", "Cairo", "Sydney", "Moscow",
             "Dublin", "Vienna", "Athens", "Lisbon", "Beijing", "Seoul", "Bangkok", "Istanbul",
             "Toronto", "Chicago", "Boston", "Lima", "Nairobi", "Warsaw", "Budapest", "Helsinki",
             "Stockholm", "Amsterdam", "Brussels", "Geneva", "Munich", "Milan", "Venice",
             "Oslo", "Prague", "Delhi", "Havana"],
    "emotion": ["happy", "sad", "angry", "calm", "afraid", "brave", "proud", "ashamed", "excited",
                "bored", "cheerful", "gloomy", "anxious", "relaxed", "nervous", "confident",
                "jealous", "grateful", "curious", "furious", "joyful", "miserable", "scared",
                "surprised", "worried", "embarrassed", "shy", "upset", "delighted", "frustrated",
                "peaceful", "guilty", "hopeful", "hopeless", "lonely", "content"],
    "name": ["Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Irene", "Jack",
             "Kate", "Leo", "Mary", "Rachel", "Sam", "Tom", "Victor", "Wendy", "Zoe", "Anna",
             "Ben", "Chloe", "Daniel", "Ella", "Felix", "George", "Hannah", "Isaac", "Julia",
             "Lucy", "Max", "Olivia", "Nina", "Oscar", "Paul", "Sophie"],
    "profession": ["doctor", "teacher", "farmer", "baker", "pilot", "nurse", "lawyer", "painter",
                   "singer", "driver", "soldier", "judge", "chef", "sailor", "engineer",
                   "plumber", "butcher", "carpenter", "mechanic", "scientist", "banker",
                   "fisherman", "gardener", "librarian", "pharmacist", "photographer", "poet",
                   "dancer", "actor", "architect", "journalist", "waiter", "surgeon", "tailor",
                   "dentist", "writer"],
    "vehicle": ["car", "bus", "train", "truck", "bike", "boat", "ship", "plane", "taxi", "tram",
                "van", "scooter", "tractor", "helicopter", "motorbike", "ferry", "submarine",
                "jeep", "ambulance", "lorry", "bicycle", "sledge", "wagon", "carriage", "kayak",
                "glider", "trolley", "limousine", "minibus", "caravan", "raft", "spaceship",
                "rocket", "canoe", "yacht", "airship"],
    "instrument": ["piano", "guitar", "violin", "drum", "flute", "trumpet", "harp", "cello",
                   "banjo", "clarinet", "oboe", "saxophone", "tuba", "trombone", "bagpipes",
                   "harmonica", "mandolin", "xylophone", "tambourine", "bassoon", "keyboard",
                   "lute", "sitar", "viola", "piccolo", "cymbal", "bugle", "gong", "marimba",
                   "zither", "fiddle", "ukulele", "accordion", "organ", "triangle", "synthesizer"],
}

# Category noun with its article, as used in definitions and in "x -> category" lines.
CATEGORY_NOUN: dict[str, tuple[str, str]] = {
    "colour": ("a", "colour"), "animal": ("an", "animal"), "number": ("a", "number"),
    "food": ("a", "food"), "city": ("a", "city"), "emotion": ("an", "emotion"),
    "name": ("a", "name"), "profession": ("a", "job"), "vehicle": ("a", "vehicle"),
    "instrument": ("an", "instrument"),
}

# Words whose definition sentences (and "x -> category" lines) are withheld from training.
N_HELD_OUT = 4
HELD_OUT: dict[str, list[str]] = {c: ws[-N_HELD_OUT:] for c, ws in CONCEPTS.items()}

ANTONYM_PAIRS: list[tuple[str, str]] = [
    ("happy", "sad"), ("angry", "calm"), ("afraid", "brave"), ("proud", "ashamed"),
    ("excited", "bored"), ("cheerful", "gloomy"), ("anxious", "relaxed"), ("hopeful", "hopeless"),
    ("nervous", "confident"), ("joyful", "miserable"), ("black", "white"),
]

DIGITS: dict[str, str] = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13",
    "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18",
    "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60",
    "seventy": "70", "eighty": "80", "ninety": "90", "zero": "0", "hundred": "100",
    "thousand": "1000", "dozen": "12", "million": "1000000",
}

FRENCH: dict[str, str] = {
    "red": "rouge", "blue": "bleu", "green": "vert", "yellow": "jaune", "black": "noir",
    "white": "blanc", "grey": "gris", "pink": "rose",
    "cat": "chat", "dog": "chien", "horse": "cheval", "cow": "vache", "wolf": "loup",
    "bear": "ours", "mouse": "souris", "fox": "renard",
    "one": "un", "two": "deux", "three": "trois", "four": "quatre", "five": "cinq",
    "seven": "sept", "eight": "huit", "nine": "neuf", "ten": "dix", "eleven": "onze",
    "twelve": "douze",
    "bread": "pain", "cheese": "fromage", "apple": "pomme", "rice": "riz", "soup": "soupe",
    "cake": "gateau", "butter": "beurre", "egg": "oeuf",
    "London": "Londres", "Rome": "Rome", "Vienna": "Vienne", "Athens": "Athenes",
}

COUNT_WORDS: dict[int, str] = {2: "two", 3: "three", 4: "four", 5: "five"}


def concept_of(word: str) -> str | None:
    """The concept a word belongs to, or None."""
    for concept, words in CONCEPTS.items():
        if word in words:
            return concept
    return None


def all_words() -> list[str]:
    """Every concept word, concept by concept."""
    return [w for ws in CONCEPTS.values() for w in ws]
