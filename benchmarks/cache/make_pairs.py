"""Writes ``data/semantic_pairs.jsonl``: labelled prompt pairs for the semantic cache.

How the set is made (run ``python -m benchmarks.cache.make_pairs`` to rebuild it; the
output is deterministic and checked in):

* ``same`` pairs ask the same question in other words: hand-written paraphrase templates
  (rewordings, not word shuffles) filled with hand-picked subjects.
* ``different`` pairs are near-misses a cache must NOT confuse, in five kinds:
  ``number`` (the same question with a changed number), ``negation`` (the question
  negated), ``entity`` (another city, language, person...), ``direction`` (the same words
  in another order that flips the meaning: Celsius to Fahrenheit and back) and
  ``unrelated`` (two questions of the paraphrase set on different subjects, a sanity floor).

The templates were written for this benchmark by hand; no pair comes from a model. It is
synthetic English, so it measures the worst cases a cache meets (near-misses), not a
production hit rate.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).parent / "data" / "semantic_pairs.jsonl"

SUBJECTS = [
    "photosynthesis",
    "the French Revolution",
    "compound interest",
    "black holes",
    "the immune system",
    "machine learning",
    "inflation",
    "plate tectonics",
    "the water cycle",
    "quantum entanglement",
    "the Roman Empire",
    "supply and demand",
    "climate change",
    "DNA replication",
    "the stock market",
    "blockchain",
    "the theory of relativity",
    "vaccines",
    "the Renaissance",
    "volcanoes",
    "public key cryptography",
    "the Cold War",
    "neural networks",
    "the greenhouse effect",
    "antibiotics",
    "the printing press",
    "hash tables",
    "the Industrial Revolution",
    "ocean tides",
    "recursion",
]

# (a, b): the same request in other words.
PARAPHRASES = [
    ("What is {s}?", "Can you explain what {s} is?"),
    ("Give me a short summary of {s}.", "Summarize {s} briefly."),
    ("How does {s} work?", "Explain the way {s} works."),
    ("Why is {s} important?", "What makes {s} so significant?"),
    ("Explain {s} to a ten-year-old.", "Describe {s} in terms a young child would understand."),
]

NUMBERS = [
    ("What is {a}% of {b}?", [(15, 240), (20, 80), (7, 300), (12, 45), (30, 90), (5, 1000)]),
    ("Convert {a} miles to kilometers.", [(5, 8), (10, 12), (26, 42), (3, 30), (100, 110), (1, 7)]),
    ("How many days are in {a} weeks?", [(3, 4), (12, 21), (52, 25), (6, 9), (10, 100), (2, 20)]),
    ("Is {a} a prime number?", [(91, 97), (51, 53), (221, 223), (87, 89), (119, 113), (57, 59)]),
    ("Write a poem with exactly {a} lines.", [(4, 8), (12, 14), (3, 5), (10, 16), (6, 9), (2, 20)]),
    (
        "What was the population of London in {a}?",
        [(1900, 1950), (1800, 1850), (2000, 2020), (1700, 1750), (1960, 1990), (1850, 1901)],
    ),
    (
        "Set a budget of {a} dollars for a weekend trip.",
        [(200, 2000), (50, 500), (300, 350), (1000, 100), (75, 750), (120, 1200)],
    ),
    (
        "Give me {a} ideas for a birthday party.",
        [(3, 10), (5, 50), (7, 2), (4, 40), (12, 20), (6, 16)],
    ),
    ("Compute {a} times {b}.", [(17, 23), (12, 13), (45, 54), (99, 98), (14, 41), (36, 63)]),
    (
        "Round {a} to the nearest ten.",
        [(347, 743), (1234, 4321), (58, 85), (99, 91), (161, 116), (205, 250)],
    ),
]

NEGATIONS = [
    ("Which foods contain gluten?", "Which foods do not contain gluten?"),
    ("Why do cats purr?", "Why don't cats purr?"),
    (
        "Is it safe to drink tap water in Mexico City?",
        "Is it unsafe to drink tap water in Mexico City?",
    ),
    ("List animals that can fly.", "List animals that cannot fly."),
    (
        "Should I use tabs for indentation in Python?",
        "Should I avoid tabs for indentation in Python?",
    ),
    ("Which countries use the euro?", "Which countries do not use the euro?"),
    (
        "Write a sentence that includes the word river.",
        "Write a sentence that does not include the word river.",
    ),
    (
        "What happens if you take antibiotics for a virus?",
        "What happens if you never take antibiotics for a virus?",
    ),
    ("Why is the sky blue?", "Why is the sky not blue at sunset?"),
    ("Which vitamins are fat soluble?", "Which vitamins are not fat soluble?"),
    ("Explain why this code compiles.", "Explain why this code does not compile."),
    ("Name fruits that are high in sugar.", "Name fruits that are low in sugar."),
    ("Which planets have rings?", "Which planets have no rings?"),
    ("Is coffee good for your health?", "Is coffee bad for your health?"),
    ("Which metals are magnetic?", "Which metals are not magnetic?"),
    ("Describe a job that requires a degree.", "Describe a job that requires no degree."),
    ("How can I increase my heart rate?", "How can I lower my heart rate?"),
    ("Recommend movies suitable for children.", "Recommend movies unsuitable for children."),
    ("Which birds migrate in winter?", "Which birds never migrate in winter?"),
    ("Why do some people like cilantro?", "Why do some people dislike cilantro?"),
    ("Is zero an even number?", "Is zero not an even number?"),
    (
        "List languages that use the Latin alphabet.",
        "List languages that do not use the Latin alphabet.",
    ),
    ("When should I water cactus plants?", "When should I not water cactus plants?"),
    ("Which mushrooms are edible?", "Which mushrooms are poisonous?"),
    ("What are the benefits of remote work?", "What are the drawbacks of remote work?"),
    ("Which snakes are venomous?", "Which snakes are not venomous?"),
    ("Give reasons to learn Rust.", "Give reasons not to learn Rust."),
    ("How do I enable dark mode on an iPhone?", "How do I disable dark mode on an iPhone?"),
    ("Which chess openings are aggressive?", "Which chess openings are not aggressive?"),
    ("Can dogs eat grapes?", "Can dogs not eat grapes?"),
    ("Is water wet?", "Is water not wet?"),
    ("Which elements are noble gases?", "Which elements are not noble gases?"),
    ("What foods are allowed on a keto diet?", "What foods are forbidden on a keto diet?"),
    (
        "Which programming languages are statically typed?",
        "Which programming languages are not statically typed?",
    ),
    ("How do I add a user to the sudo group?", "How do I remove a user from the sudo group?"),
    (
        "Is it legal to record phone calls in California?",
        "Is it illegal to record phone calls in California?",
    ),
    (
        "Which stars are visible from the southern hemisphere?",
        "Which stars are invisible from the southern hemisphere?",
    ),
    ("Why do leaves change color in autumn?", "Why do leaves not change color in autumn?"),
    ("Show me a valid JSON example.", "Show me an invalid JSON example."),
    ("Which trees keep their leaves in winter?", "Which trees lose their leaves in winter?"),
    (
        "Should I include a cover letter with my application?",
        "Should I skip the cover letter with my application?",
    ),
    ("What makes a password strong?", "What makes a password weak?"),
    ("Which cheeses are made from goat milk?", "Which cheeses are not made from goat milk?"),
    ("How to make the text bold in Markdown?", "How to make the text not bold in Markdown?"),
    ("Which U.S. states have a sales tax?", "Which U.S. states have no sales tax?"),
    ("Is a tomato a fruit?", "Is a tomato not a fruit?"),
    ("When is it appropriate to tip in Japan?", "When is it inappropriate to tip in Japan?"),
    ("Which diseases are contagious?", "Which diseases are not contagious?"),
    ("Describe a healthy breakfast.", "Describe an unhealthy breakfast."),
    ("How do I turn on two-factor authentication?", "How do I turn off two-factor authentication?"),
]

ENTITIES = [
    (
        "What is the capital of {x}?",
        [
            "France",
            "Spain",
            "Peru",
            "Kenya",
            "Japan",
            "Canada",
            "Egypt",
            "Norway",
            "Chile",
            "Vietnam",
        ],
    ),
    (
        "Translate 'good morning' into {x}.",
        [
            "French",
            "German",
            "Japanese",
            "Swahili",
            "Korean",
            "Italian",
            "Hindi",
            "Polish",
            "Greek",
            "Turkish",
        ],
    ),
    (
        "Write a short biography of {x}.",
        [
            "Marie Curie",
            "Isaac Newton",
            "Ada Lovelace",
            "Nikola Tesla",
            "Frida Kahlo",
            "Alan Turing",
            "Charles Darwin",
            "Rosalind Franklin",
            "Leonardo da Vinci",
            "Nelson Mandela",
        ],
    ),
    (
        "What is the weather usually like in {x} in July?",
        [
            "Paris",
            "Sydney",
            "Moscow",
            "Lima",
            "Cairo",
            "Oslo",
            "Mumbai",
            "Toronto",
            "Tokyo",
            "Dublin",
        ],
    ),
    (
        "How do I reverse a list in {x}?",
        ["Python", "JavaScript", "Java", "Rust", "Go", "Ruby", "Haskell", "C#", "Kotlin", "Swift"],
    ),
]

DIRECTIONS = [
    ("Convert 30 degrees Celsius to Fahrenheit.", "Convert 30 degrees Fahrenheit to Celsius."),
    (
        "Translate this sentence from English to Spanish.",
        "Translate this sentence from Spanish to English.",
    ),
    (
        "How do I get from Boston to New York by train?",
        "How do I get from New York to Boston by train?",
    ),
    ("Is a square a rectangle?", "Is a rectangle a square?"),
    ("Convert 5 kilograms to pounds.", "Convert 5 pounds to kilograms."),
    ("Who was president before Lincoln?", "Who was president after Lincoln?"),
    (
        "Write a function that converts JSON to YAML.",
        "Write a function that converts YAML to JSON.",
    ),
    ("Did the dog bite the man?", "Did the man bite the dog?"),
    (
        "What is the difference between a virus and bacteria?",
        "What do a virus and bacteria have in common?",
    ),
    ("How many US dollars is 100 euros?", "How many euros is 100 US dollars?"),
    (
        "Sort these numbers from smallest to largest.",
        "Sort these numbers from largest to smallest.",
    ),
    ("Is Python faster than Java?", "Is Java faster than Python?"),
    ("What comes after Tuesday?", "What comes before Tuesday?"),
    ("Convert 10 inches to centimeters.", "Convert 10 centimeters to inches."),
    ("Write an email accepting the job offer.", "Write an email declining the job offer."),
    ("Explain how to encrypt a file with GPG.", "Explain how to decrypt a file with GPG."),
    ("How do I merge branch main into feature?", "How do I merge branch feature into main?"),
    ("Which is bigger, the Moon or Pluto?", "Which is smaller, the Moon or Pluto?"),
    (
        "Move the file from the desktop to the documents folder.",
        "Move the file from the documents folder to the desktop.",
    ),
    ("Does Alice owe Bob money?", "Does Bob owe Alice money?"),
]


def pairs() -> list[dict[str, str]]:
    rng = random.Random(14)
    out: list[dict[str, str]] = []

    def add(a: str, b: str, label: str, kind: str) -> None:
        out.append({"a": a, "b": b, "label": label, "kind": kind})

    for i, subject in enumerate(SUBJECTS):
        for j, (ta, tb) in enumerate(PARAPHRASES):
            if (i + j) % 5 < 4:  # 4 of the 5 templates per subject: 120 pairs
                add(ta.format(s=subject), tb.format(s=subject), "same", "paraphrase")
    # Same question, other punctuation or casing: what an exact cache already misses.
    for subject in SUBJECTS:
        add(f"what is {subject}", f"What is {subject}?", "same", "surface")
    for template, values in NUMBERS:
        for a, b in values:
            if "{b}" in template:
                add(template.format(a=a, b=b), template.format(a=a, b=b + 7), "different", "number")
            else:
                add(template.format(a=a), template.format(a=b), "different", "number")
    for a, b in NEGATIONS:
        add(a, b, "different", "negation")
    for template, values in ENTITIES:
        for k in range(len(values)):
            add(
                template.format(x=values[k]),
                template.format(x=values[(k + 1) % len(values)]),
                "different",
                "entity",
            )
    for a, b in DIRECTIONS:
        add(a, b, "different", "direction")
    for _ in range(30):
        s1, s2 = rng.sample(SUBJECTS, 2)  # two subjects, never the same one
        t1, t2 = rng.choice(PARAPHRASES), rng.choice(PARAPHRASES)
        add(t1[0].format(s=s1), t2[1].format(s=s2), "different", "unrelated")
    return out


def main() -> None:
    rows = pairs()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    kinds: dict[str, int] = {}
    for row in rows:
        kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
    print(f"{len(rows)} pairs -> {OUT}: {kinds}")


if __name__ == "__main__":
    main()
