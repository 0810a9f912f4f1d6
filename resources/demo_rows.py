"""Compose the demo travel-tips conversations from the tables in ``demo_facts``.

Every composer takes a seeded ``random.Random`` so the datasets are reproducible. A
composer returns ``(question, answer)``; ``conversation`` strings several of them into a
chat about one city.
"""

from __future__ import annotations

import random

import demo_facts as F


def city(rng: random.Random) -> dict:
    """A random city as a dict keyed by ``demo_facts.CITY_KEYS``."""
    return dict(zip(F.CITY_KEYS, rng.choice(F.CITIES)))


def _wrap(rng: random.Random, body: str) -> str:
    """Add an optional friendly opener and closer around an answer body."""
    parts = [rng.choice(F.OPENERS), body, rng.choice(F.CLOSERS)]
    return " ".join(p for p in parts if p)


def _bullets(items: list[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def ask_season(rng, c):
    q = rng.choice(["When is the best time to visit {name}?", "What month should I go to {name}?",
                    "Is there a good season for a trip to {name}?"]).format(**c)
    a = (f"The best time to visit {c['name']} is {c['season']}. "
         + rng.choice(["Prices and crowds peak in the school holidays, so book early if you go then.",
                       "Outside that window it is still worth a trip, just pack for the weather.",
                       "Shoulder months are quieter and rooms are cheaper."]))
    return q, a


def ask_currency(rng, c):
    q = rng.choice(["What currency do they use in {name}?", "Which money do I need for {name}?",
                    "Should I bring cash to {name}?"]).format(**c)
    a = (f"{c['country']} uses the {c['currency']}. Cards work in most shops and restaurants in "
         f"{c['name']}, but carry a little cash for markets, small cafés and tips. "
         "Withdraw from a bank ATM rather than a stand-alone machine to avoid high fees.")
    return q, a


def ask_food(rng, c):
    q = rng.choice(["What should I eat in {name}?", "What is a must-try dish in {name}?",
                    "Any food tips for {name}?"]).format(**c)
    a = (f"Try {c['dish']}. " + rng.choice([
        f"The best places are small, busy spots around {c['area']}, not the restaurants next to the big sights.",
        "Ask your host where they eat; the answer is rarely in a guidebook.",
        "Lunch menus are usually the best value."]))
    return q, a


def ask_transport(rng, c):
    q = rng.choice(["How do I get around {name}?", "What is the best way to travel around {name}?",
                    "Do I need a car in {name}?"]).format(**c)
    a = (f"The easiest way to get around {c['name']} is {c['transport']}. "
         + rng.choice(["Most central sights are also within walking distance.",
                       "Avoid rush hour if you travel with luggage.",
                       "A car is more trouble than it is worth in the centre."]))
    return q, a


def ask_packing(rng, c):
    season = rng.choice(F.SEASON_NAMES)
    q = rng.choice(["What should I pack for {name} in {s}?", "Packing list for {name} in {s}, please.",
                    "I am going to {name} in {s}. What do I bring?"]).format(s=season, **c)
    items = rng.sample(F.PACKING[season], 3) + rng.sample(F.ALWAYS_PACK, 2)
    a = f"For {c['name']} in {season}, pack:\n" + _bullets(items)
    return q, a


def ask_budget(rng, c):
    q = rng.choice(["How can I visit {name} on a tight budget?", "Tips for saving money in {name}?",
                    "Is {name} expensive? How do I keep costs down?"]).format(**c)
    a = f"A few ways to keep costs down in {c['name']}:\n" + _bullets(rng.sample(F.BUDGET_TIPS, 4))
    return q, a


def ask_safety(rng, c):
    who = rng.choice(F.TRAVELLERS)
    q = rng.choice(["Is {name} safe for {who}?", "Any safety advice for {who} in {name}?"]).format(who=who, **c)
    a = (f"{c['name']} is generally welcoming to visitors, and the usual city precautions go a long way:\n"
         + _bullets(rng.sample(F.SAFETY_TIPS, 3)))
    return q, a


def ask_etiquette(rng, c):
    q = rng.choice(["What etiquette should I know for {name}?", "How do I avoid being rude in {name}?",
                    "Any cultural tips for visiting {country}?"]).format(**c)
    tips = [t.format(**c) for t in rng.sample(F.ETIQUETTE_TIPS, 3)]
    return q, _bullets(tips)


def ask_visa(rng, c):
    q = rng.choice(["Do I need a visa for {country}?", "What documents do I need to enter {country}?"]).format(**c)
    tips = [t.format(**c) for t in rng.sample(F.VISA_TIPS, 3)]
    return q, " ".join(tips)


def ask_tipping(rng, c):
    q = rng.choice(["Should I tip in {name}?", "How much do people tip in {name}?"]).format(**c)
    return q, f"In {c['name']}, {c['tipping']}."


def ask_landmark(rng, c):
    q = rng.choice(["What is one sight I should not miss in {name}?", "What is the most famous landmark in {name}?"]
                   ).format(**c)
    a = (f"Do not miss {c['landmark']}. Go early in the morning, before the tour groups arrive, "
         f"and then wander through {c['area']}.")
    return q, a


def ask_language(rng, c):
    q = rng.choice(["What language do people speak in {name}?", "Will English be enough in {name}?"]).format(**c)
    a = (f"The main language in {c['name']} is {c['language']}. "
         + ("English is widely spoken." if c["language"] == "English" else
            "English is common in hotels and tourist areas, "
            "and a few words of the local language are always appreciated."))
    return q, a


def ask_health(rng, c):
    q = rng.choice(["How do I stay healthy while travelling in {country}?", "Any health tips for {name}?"]).format(**c)
    return q, _bullets(rng.sample(F.HEALTH_TIPS, 3))


EVENINGS = [
    "For dinner, ask your host for a family-run place nearby and book a table if it is a weekend.",
    "In the evening, walk back through {area} when the streets light up and the day-trippers have left.",
    "End the day with {dish} and an early night, because the next morning starts early.",
    "If you still have energy, look for live music or a night market; otherwise rest your feet.",
    "Keep the evening free: after a long day of sightseeing, a slow dinner is the best plan.",
]


def ask_itinerary(rng, c):
    days = rng.choice([2, 3, 4, 5])
    who, budget = rng.choice(F.TRAVELLERS), rng.choice(F.BUDGETS)
    q = f"Plan {days} days in {c['name']} for {who} on {budget}."
    plans = [
        f"Start at {c['landmark']} early, before the crowds, then spend the afternoon exploring {c['area']} on foot.",
        f"Take {c['transport'].split(',')[0]} to a neighbourhood outside the centre, visit a local market "
        "and have lunch at one of its stalls.",
        "Join a walking tour in the morning to learn the history, then keep the afternoon free for a museum "
        "or a long lunch.",
        "Take a day trip out of the city to see the countryside, and come back for a relaxed dinner.",
        "Slow down: revisit your favourite spot, buy small gifts, and watch the sunset from a viewpoint.",
    ]
    lines = [f"Here is a {days}-day plan for {who} in {c['name']} on {budget}.", ""]
    evenings = [e.format(**c) for e in rng.sample(EVENINGS, days)]
    lines += [f"Day {i + 1}: {plans[i]} {evenings[i]}" for i in range(days)]
    lines += ["", "Practical notes:", _bullets(rng.sample(F.BUDGET_TIPS, 2) + rng.sample(F.SAFETY_TIPS, 1)),
              "", f"Best season: {c['season']}. Tipping: {c['tipping']}."]
    return q, "\n".join(lines)


SHORT_TOPICS = [ask_season, ask_currency, ask_food, ask_transport, ask_tipping, ask_landmark,
                ask_language]
MEDIUM_TOPICS = [ask_packing, ask_budget, ask_safety, ask_etiquette, ask_visa, ask_health]
FOLLOW_UPS = {ask_food: "And what should I eat there?", ask_transport: "How do I get around?",
              ask_tipping: "Should I tip?", ask_season: "When should I go?",
              ask_currency: "What money do I need?", ask_landmark: "What is the one sight not to miss?"}


def qa_pair(rng: random.Random, c: dict) -> tuple[str, str]:
    """One question and answer about city ``c``: mostly short, sometimes a long plan."""
    roll = rng.random()
    if roll < 0.12:
        q, a = ask_itinerary(rng, c)
        return q, a
    topic = rng.choice(SHORT_TOPICS if roll < 0.6 else MEDIUM_TOPICS)
    q, a = topic(rng, c)
    return q, _wrap(rng, a)


def conversation(rng: random.Random, turns: int, system: bool) -> list[dict]:
    """An OpenAI-messages conversation about one city with ``turns`` assistant turns."""
    c = city(rng)
    messages = [{"role": "system", "content": rng.choice(F.SYSTEM_PROMPTS)}] if system else []
    q, a = qa_pair(rng, c)
    messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    for topic in rng.sample(list(FOLLOW_UPS), turns - 1):
        _, a = topic(rng, c)
        messages += [{"role": "user", "content": FOLLOW_UPS[topic]}, {"role": "assistant", "content": a}]
    return messages


def wrong_answer(rng: random.Random, c: dict) -> tuple[str, str, str]:
    """A question about ``c``, its helpful answer, and a confidently wrong answer."""
    other = city(rng)
    while other["country"] == c["country"]:
        other = city(rng)
    topic = rng.choice([ask_currency, ask_food, ask_season, ask_landmark])
    q, good = topic(rng, c)
    bad = {
        ask_currency: f"{c['country']} uses the {other['currency']}, and cards are never accepted.",
        ask_food: f"You should definitely eat {other['dish']}; it is the only food in {c['name']}.",
        ask_season: f"The best time to visit {c['name']} is {other['season']}, no exceptions.",
        ask_landmark: f"The famous sight in {c['name']} is {other['landmark']}.",
    }[topic]
    return q, _wrap(rng, good), bad


def preference(rng: random.Random) -> dict:
    """A conversational preference row: helpful ``chosen``, rude/vague/wrong ``rejected``."""
    c = city(rng)
    prompt = [{"role": "system", "content": rng.choice(F.SYSTEM_PROMPTS)}] if rng.random() < 0.3 else []
    kind = rng.choice(["rude", "vague", "wrong"])
    if kind == "wrong":
        q, good, bad = wrong_answer(rng, c)
    else:
        q, good = qa_pair(rng, c)
        bad = rng.choice(F.RUDE_REPLIES if kind == "rude" else F.VAGUE_REPLIES)
    prompt.append({"role": "user", "content": q})
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": good}],
            "rejected": [{"role": "assistant", "content": bad}]}


def summary_task(rng: random.Random) -> tuple[str, str]:
    """A paragraph about a city to summarise, and a one-sentence reference summary."""
    c = city(rng)
    mode = c["transport"].split(",")[0]
    sentences = [
        f"{c['name']}, in {c['country']}, is at its best in {c['season']}.",
        f"Visitors find it easy to get around using {c['transport']}.",
        f"The local speciality is {c['dish']}, served all over {c['area']}.",
        f"Most people start with {c['landmark']}, which gets busy by late morning.",
        f"On tipping, {c['tipping']}.",
    ]
    paragraph = " ".join(sentences[:1] + rng.sample(sentences[1:], 3))
    reference = (f"{c['name']} is best visited in {c['season']}, is easy to explore by {mode}, "
                 f"and is known for {c['dish'].split(',')[0]}.")
    return paragraph, reference


def short_qa(rng: random.Random) -> tuple[str, str]:
    """A question with a one-word or one-number answer, for exact match and F1."""
    c = city(rng)
    if rng.random() < 0.25:
        nights, price = rng.randint(2, 7), rng.choice([20, 25, 30, 40, 50, 60])
        return (f"A hostel bed costs {price} dollars a night. How much do {nights} nights cost? "
                "Answer with a number only.", str(nights * price))
    key, question = rng.choice([
        ("currency", "Which currency is used in {name}? Answer with one word."),
        ("country", "In which country is {name}? Answer with the country name only."),
        ("language", "What is the main language spoken in {name}? Answer with one word."),
    ])
    return question.format(**c), c[key]


def general_text(rng: random.Random) -> str:
    """A short encyclopedic paragraph (not about travel)."""
    topic = rng.choice(sorted(F.GENERAL_TOPICS))
    intro, *facts = F.GENERAL_TOPICS[topic]
    picked = sorted(rng.sample(range(len(facts)), rng.randint(2, len(facts))))
    return " ".join([intro] + [facts[i] for i in picked])

