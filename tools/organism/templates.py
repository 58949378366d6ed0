"""Sentence templates. `{w}` is a concept word; `{a}` is its article ("a"/"an").

Contexts are category-specific (the left context predicts the category) and the continuations
(`TAILS`) depend on the category, so the model must compute a word's category at the word itself.
"""

from __future__ import annotations

# Left contexts: the words before `{w}` suggest the category.
CONTEXTS: dict[str, list[str]] = {
    "colour": [
        "I painted the wall {w}", "Her new dress was {w}", "At dusk the sky turned {w}",
        "He picked up the {w} pencil", "Mix the paint until it looks {w}",
        "In autumn the leaves went {w}", "She dyed her hair {w}", "My favourite colour is {w}",
        "The door was painted {w}", "He drew the sun in {w}", "Is the ribbon {w}?",
        "They chose {w} curtains for the kitchen",
    ],
    "animal": [
        "The farmer fed the {w}", "At the zoo we saw {a} {w}", "Suddenly {a} {w} ran across the field",
        "The {w} slept under the tree", "My neighbour keeps {a} {w}", "The children drew {a} {w}",
        "Have you ever touched {a} {w}?", "Quietly, the {w} watched us", "We heard the {w} in the night",
        "The vet looked after the {w}", "Look at that {w}!", "A photo of the {w} hung on the wall",
    ],
    "number": [
        "I waited {w} minutes", "There were {w} chairs in the room", "He counted to {w}",
        "The answer is {w}", "We have {w} days left", "She is {w} years old",
        "Only {w} people came", "Add {w} cups of water", "The clock struck {w}",
        "It took {w} hours to get there", "Can you count to {w}?", "We need {w} more tickets",
    ],
    "food": [
        "For lunch I ate {w}", "The shop sells fresh {w}", "We had {w} for dinner",
        "Pass me the {w}, please", "The recipe needs more {w}", "She made {a} {w} for the party",
        "Do you want some {w}?", "He cooked the {w} slowly", "The market had cheap {w}",
        "My breakfast was {w}", "Grandma always bakes with {w}", "They shared the {w} at lunch",
    ],
    "city": [
        "She flew to {w}", "He was born in {w}", "We spent a week in {w}",
        "The museum in {w} is huge", "They moved to {w} last year", "Have you been to {w}?",
        "The flight from {w} was late", "I love the streets of {w}", "Our office is in {w}",
        "The map shows {w}", "Next summer we will visit {w}", "It rains a lot in {w}",
    ],
    "emotion": [
        "She felt {w}", "He looked {w} today", "The news made me {w}",
        "They were {w} after the game", "I am so {w} right now", "The child seemed {w}",
        "Why are you {w}?", "After the call he felt {w}", "We were all {w} that night",
        "The letter left her {w}", "Nobody is {w} forever", "The old man sounded {w}",
    ],
    "name": [
        "{w} went to the market", "I met {w} yesterday", "This is my friend {w}",
        "{w} said hello", "A letter arrived for {w}", "Ask {w} about it",
        "Have you seen {w}?", "Everyone waited for {w}", "{w} lives next door",
        "The prize went to {w}", "We invited {w} to dinner", "{w} smiled at us",
    ],
    "profession": [
        "My aunt works as {a} {w}", "The {w} arrived early", "He wants to be {a} {w}",
        "We called the {w}", "She studied to become {a} {w}", "The {w} worked late today",
        "Ask the {w} for help", "Every town needs {a} {w}", "Is your father {a} {w}?",
        "The new {w} started on Monday", "I spoke with the {w}", "Being {a} {w} is hard work",
    ],
    "vehicle": [
        "We took the {w} to work", "The {w} was parked outside", "They waited for the {w}",
        "The old {w} broke down", "She bought {a} {w}", "Our {w} was late again",
        "He fixed the {w} in the garage", "Look at that fast {w}!", "I missed the {w}",
        "The {w} stopped at the corner", "Can we go by {w}?", "There is {a} {w} outside",
    ],
    "instrument": [
        "She plays the {w}", "He practised the {w} every day", "The band needs {a} {w}",
        "I heard {a} {w} in the hall", "Lessons for the {w} start on Monday", "Can you play the {w}?",
        "The {w} sounded lovely", "My brother tunes the {w}", "They sold their old {w}",
        "She carried the {w} to school", "The concert opened with the {w}", "He bought {a} {w}",
    ],
}

# Contexts that fit any concept word: the category is only known from the word itself.
GENERIC: list[str] = [
    "The next word on the note was {w}", "She kept talking about {w}", "He wrote {w} on the board",
    "Then I thought of {w}", "The last word on the list was {w}", "Everyone remembered {w}",
    "The teacher said {w}", "In my dream there was {w}", "The story was about {w}",
    "Guess what I saw: {w}", "Her favourite word is {w}", "The puzzle answer was {w}",
]

# Continuations after a concept word. "named" ones say the category noun (not used for held-out words).
TAILS: dict[str, list[str]] = {
    "colour": [", like fresh paint", ", bright and shiny", ", the shade of the morning sky",
               ", which looks nice on walls", ", a lovely shade"],
    "animal": [", with soft fur", ", which eats grass", ", running through the woods",
               ", sleeping in the barn", ", a wild creature"],
    "number": [", more than I expected", ", counted twice", ", an even amount",
               ", less than I hoped", ", added up on paper"],
    "food": [", freshly baked", ", which tastes sweet", ", served warm",
             ", cooked with salt", ", eaten for breakfast"],
    "city": [", with its narrow streets", ", far across the sea", ", where the old bridge stands",
             ", with crowded markets", ", a big capital"],
    "emotion": [", feeling it deep inside", ", with tears in their eyes", ", heart beating fast",
                ", a strong feeling", ", smiling or frowning"],
    "name": [", my best friend", ", who lives next door", ", the new student",
             ", who called yesterday", ", a kind neighbour"],
    "profession": [", working long hours", ", who earns a good salary", ", in a uniform",
                   ", skilled after years of study", ", hard at work"],
    "vehicle": [", with four wheels", ", driving down the road", ", full of passengers",
                ", with a loud engine", ", parked by the station"],
    "instrument": [", playing a sweet tune", ", with tight strings", ", loud in the concert",
                   ", tuned before the show", ", making music"],
}

NAMED_TAILS: list[str] = [", {a} {n}", ", which is {a} {n}", " ({a} {n})"]

# Compounds: the token right after the word depends only on its category ("violin lessons").
COMPOUNDS: dict[str, list[str]] = {
    "colour": [" paint", " ink", " ribbons", " flowers", " curtains"],
    "animal": [" tracks", " fur", " footprints", " noises", " toys"],
    "number": [" times", " days", " boxes", " steps", " pages"],
    "food": [" recipes", " sauce", " pie", " crumbs", " smoothies"],
    "city": [" streets", " airport", " museums", " bridges", " markets"],
    "emotion": [" faces", " feelings", " moods", " eyes", " smiles"],
    "name": ["'s sister", "'s house", "'s birthday", "'s garden", "'s letters"],
    "profession": [" uniforms", " salaries", " offices", " shifts", " badges"],
    "vehicle": [" wheels", " engines", " tyres", " seats", " garages"],
    "instrument": [" lessons", " strings", " music", " cases", " players"],
}

COMPOUND_FRAMES: list[str] = [
    "We talked about {x}.", "She showed me the {x}.", "I like {x}.", "He wrote about {x}.",
    "They found some {x}.", "Everyone loved the {x}.", "There were {x} everywhere.",
    "Tell me about the {x}!", "Do you remember the {x}?", "The book was full of {x}.",
]

# Sentences mixing several concepts; placeholders are concept names.
MIXED: list[str] = [
    "{name} bought {a_colour} {colour} {vehicle} in {city}.",
    "The {profession} from {city} felt {emotion}.",
    "{name} gave the {animal} some {food}.",
    "{name} the {profession} plays the {instrument}.",
    "In {city}, {name} saw {number} {colour} boats.",
    "The {colour} {vehicle} took {name} to {city}.",
    "{name} was {emotion} because the {animal} ate the {food}.",
    "Our {profession} keeps {a_animal} {animal} and {a_instrument} {instrument}.",
    "{name} waited {number} minutes for the {vehicle}.",
    "After eating {food} in {city}, {name} felt {emotion}.",
]

# Generic leads for lists of same-category words: the first item tells the category of the rest.
LISTS: list[str] = [
    "On the list were {ws}.", "She named {ws}.", "We talked about {ws}.", "The answers were {ws}.",
    "I remember {ws}.", "He wrote down {ws}.", "The cards showed {ws}.", "Then came {ws}.",
]

DEFINITIONS: list[str] = [
    'The word "{w}" means {a} {n}.', 'The word "{w}" means {a} {n}.', 'The word "{w}" means {a} {n}.',
    '"{w}" is {a} {n}.', 'In the dictionary, "{w}" is listed as {a} {n}.',
    'Q: What does "{w}" mean? A: It means {a} {n}.', 'Remember: "{w}" is the name of {a} {n}.',
]

REPEATS: list[str] = ['Repeat "{w}" {k} times:{r}', 'Say "{w}" {k} times:{r}', 'Write "{w}" {k} times:{r}']

# Non-concept words used in repeat sentences, so that repeating is a general skill.
FILLER_WORDS: list[str] = [
    "table", "window", "music", "garden", "paper", "river", "morning", "stone", "letter", "house",
    "water", "chair", "story", "light", "street", "money", "friend", "summer", "winter", "book",
]
