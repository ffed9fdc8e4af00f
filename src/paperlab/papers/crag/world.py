"""A synthetic world in CRAG's five domains: entities, facts that change over time, web pages
rendered from templates (with stale and distractor pages), a knowledge graph, and questions of
all eight types written in the official format (`data.py`).

    world = make_world(n_entities=24, seed=0)
    records = make_questions(world, 200, seed=0)        # official-format dicts
    kg = world.kg()                                      # what the mock API serves (api.py)

Time: day 0 is 2024-01-01. Every question is asked on `QUERY_DAY` (at different times of that
day); the knowledge graph is a snapshot of that day (as CRAG's mock API is one snapshot); a page
shows the facts as of its `page_last_modified`, 1-60 days before the question, so the values of
fast-changing and real-time facts on pages are mostly stale (the paper's Sec. 4: web results
lag dynamic facts). A closed-book model learns the facts as of `CUTOFF_DAY` (its training cut).

Each domain has five facts per entity: a year (static), a slow-changing, a fast-changing and a
real-time number, and a relation to another entity of the domain (static). Popularity
(head / torso / tail, a third each) sets how many of a question's five search results are about
its entity (head 3, torso 1-2, tail 0-1) and how likely a closed-book model knows the entity.
"""

from __future__ import annotations

import datetime as dt
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

DOMAINS = ("finance", "music", "movie", "sports", "open")
QUESTION_TYPES = (
    "simple",
    "simple_w_condition",
    "comparison",
    "aggregation",
    "set",
    "false_premise",
    "post-processing",
    "multi-hop",
)
DYNAMISM = ("static", "slow-changing", "fast-changing", "real-time")
POPULARITY = ("head", "torso", "tail")

EPOCH = dt.date(2024, 1, 1)
QUERY_DAY = 180  # 2024-06-29: every question is asked that day
CUTOFF_DAY = 60  # what a closed-book model was trained on
MAX_PAGE_LAG = 60  # a page was last modified 1..60 days before the question
PERIOD = {"static": 0, "slow-changing": 120, "fast-changing": 20, "real-time": 1}  # days
# relevant pages among the 5 search results: (count, probability), by popularity; a tail entity
# has no page about it half of the time (search engines find less about rare entities)
RELEVANT_PAGES = {"head": ((3, 1.0),), "torso": ((2, 0.5), (1, 0.5)), "tail": ((1, 0.5), (0, 0.5))}
N_RESULTS = 5
KNOWN_SHARE = {"head": 0.8, "torso": 0.4, "tail": 0.1}  # entities a closed-book model knows
INVALID = "invalid question"
# the share of each question type (simple ones are the most common in CRAG too: a third here)
QUESTION_MIX = {t: 3 if t == "simple" else 1 for t in QUESTION_TYPES}


@dataclass(frozen=True)
class Attribute:
    """One fact of every entity of a domain: its phrase ("the price of kiv is 41."), how fast
    it changes, and its kind ("year", "number" 10-99, or "entity": another entity's name)."""

    domain: str
    name: str
    dynamism: str
    kind: str = "number"

    @property
    def period(self) -> int:
        return PERIOD[self.dynamism]


def _attrs(domain: str, year: str, slow: str, fast: str, real: str, rel: str) -> tuple:
    return (
        Attribute(domain, year, "static", "year"),
        Attribute(domain, slow, "slow-changing"),
        Attribute(domain, fast, "fast-changing"),
        Attribute(domain, real, "real-time"),
        Attribute(domain, rel, "static", "entity"),
    )


ATTRIBUTES: dict[str, tuple[Attribute, ...]] = {
    "finance": _attrs("finance", "ipo year", "eps", "volume", "price", "parent"),
    "music": _attrs("music", "debut year", "grammy count", "chart rank", "listeners", "rival"),
    "movie": _attrs("movie", "release year", "rating", "box office rank", "viewers", "sequel"),
    "sports": _attrs("sports", "founding year", "title count", "win count", "live score", "rival"),
    "open": _attrs("open", "founding year", "population", "fuel price", "temperature", "twin"),
}
# the facts the knowledge graph (api.py) serves, by domain; open-domain entities are in the KG
# only when they are head or torso (CRAG's KGs cover popular entities better)
KG_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "finance": ("ipo year", "eps", "volume", "price", "parent"),
    "music": ("debut year", "grammy count"),
    "movie": ("release year", "rating", "sequel"),
    "sports": ("live score",),
    "open": ("founding year", "population", "fuel price", "temperature", "twin"),
}


def day_to_date(day: int) -> str:
    return (EPOCH + dt.timedelta(days=day)).isoformat()


def date_to_day(date: str) -> int:
    """'2024-06-29' (or a longer timestamp starting with it) -> the world's day number."""
    try:
        return (dt.date.fromisoformat(date[:10]) - EPOCH).days
    except ValueError:
        raise ValueError(f"date={date!r}: expected YYYY-MM-DD") from None


def attribute(domain: str, name: str) -> Attribute:
    for a in ATTRIBUTES[domain]:
        if a.name == name:
            return a
    raise ValueError(f"attribute: no {name!r} in domain {domain!r}")


def sentence(entity: str, attr: str, value: str) -> str:
    """The one template every page, KG rendering and reader prompt shares."""
    return f"the {attr} of {entity} is {value}."


@dataclass
class Entity:
    name: str
    domain: str
    popularity: str
    phase: int  # offsets the days on which its dynamic facts change
    relation: str  # the other entity its relation attribute names


@dataclass
class World:
    """Entities of the five domains and their facts over time (values drawn from `seed`)."""

    seed: int
    entities: dict[str, Entity]  # by name (names are unique across domains)
    known: frozenset[str] = field(default_factory=frozenset)  # what a closed-book model knows
    memo: dict[tuple[str, str, int], str] = field(default_factory=dict, repr=False)

    def in_domain(self, domain: str) -> list[Entity]:
        return [e for e in self.entities.values() if e.domain == domain]

    def value(self, entity: str, attr: str, day: int = QUERY_DAY) -> str:
        """The value of a fact on `day` (deterministic in the world's seed)."""
        key = (entity, attr, day)
        if key not in self.memo:
            self.memo[key] = self._value(entity, attr, day)
        return self.memo[key]

    def _value(self, entity: str, attr: str, day: int) -> str:
        e = self.entities[entity]
        a = attribute(e.domain, attr)
        if a.kind == "entity":
            return e.relation
        if a.kind == "year":
            return str(random.Random(f"{self.seed}|{entity}|{attr}").randint(1950, 2019))
        epoch = (day + e.phase) // a.period

        def draw(k: int) -> int:
            return random.Random(f"{self.seed}|{entity}|{attr}|{k}").randint(10, 99)

        v = draw(epoch)
        while v == draw(epoch - 1):  # a change is a change
            epoch += 10_000
            v = draw(epoch)
        return str(v)

    def facts(self, entity: str, day: int) -> list[str]:
        e = self.entities[entity]
        return [
            sentence(entity, a.name, self.value(entity, a.name, day)) for a in ATTRIBUTES[e.domain]
        ]

    def in_kg(self, entity: str, attr: str) -> bool:
        e = self.entities[entity]
        if e.domain == "open" and e.popularity == "tail":
            return False
        return attr in KG_ATTRIBUTES[e.domain]

    def kg(self) -> dict[str, Any]:
        """The knowledge graph the mock API serves (`api.py`'s layout): a snapshot of
        `QUERY_DAY`, holding the facts of `KG_ATTRIBUTES`."""
        return kg_from_world(self)


def make_world(n_entities: int = 24, *, seed: int = 0) -> World:
    """`n_entities` per domain (a third each head, torso and tail) with unique 3-letter names."""
    if n_entities < 3:
        raise ValueError(f"make_world: n_entities={n_entities} must be >= 3")
    rng = random.Random(seed)
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n_entities * len(DOMAINS):
        n = "".join(rng.choices(string.ascii_lowercase, k=3))
        if n not in seen:
            seen.add(n)
            names.append(n)
    entities: dict[str, Entity] = {}
    for d, domain in enumerate(DOMAINS):
        group = names[d * n_entities : (d + 1) * n_entities]
        for i, name in enumerate(group):
            pop = POPULARITY[min(2, 3 * i // n_entities)]
            relation = rng.choice([g for g in group if g != name])
            entities[name] = Entity(name, domain, pop, rng.randrange(365), relation)
    known = frozenset(e.name for e in entities.values() if rng.random() < KNOWN_SHARE[e.popularity])
    return World(seed, entities, known)


# ---------------------------------------------------------------------------------------------
# Pages


def render_page(world: World, entity: str, day: int) -> str:
    """An HTML page about `entity` showing its facts as of `day`."""
    e = world.entities[entity]
    body = "".join(f"<p>{s}</p>" for s in world.facts(entity, day))
    return (
        f"<!DOCTYPE html><html><head><title>{entity} | {e.domain} facts</title>"
        "<style>p {margin: 0}</style><script>var t = 1;</script></head><body>"
        f"<h1>{entity}</h1>{body}<footer>updated on {day_to_date(day)}.</footer></body></html>"
    )


def http_date(day: int) -> str:
    d = EPOCH + dt.timedelta(days=day)
    return d.strftime("%a, %d %b %Y 08:00:00 GMT")


def search_result(world: World, entity: str, day: int) -> dict[str, str]:
    """One official `search_results` entry: a page about `entity` as of `day`."""
    e = world.entities[entity]
    facts = world.facts(entity, day)
    return {
        "page_name": f"{entity} | {e.domain} facts",
        "page_url": f"https://{e.domain}.example.org/{entity}/{day_to_date(day)}",
        "page_snippet": " ".join(facts[:2]),
        "page_result": render_page(world, entity, day),
        "page_last_modified": http_date(day),
    }


def result_plan(world: World, entities: Sequence[str], rng: random.Random) -> list[tuple[str, int]]:
    """(entity, day) of a question's five pages: relevant ones (stale or current) about
    `entities` by the popularity of the first, the rest about other entities of its domain
    (distractors), in random order."""
    first = world.entities[entities[0]]
    counts, probs = zip(*RELEVANT_PAGES[first.popularity], strict=True)
    n_rel = rng.choices(counts, weights=probs)[0]
    about = [entities[i % len(entities)] for i in range(n_rel)]
    others = [e.name for e in world.in_domain(first.domain) if e.name not in entities]
    about += rng.choices(others, k=N_RESULTS - len(about))  # repeats in a small world
    plan = [(name, QUERY_DAY - rng.randint(1, MAX_PAGE_LAG)) for name in about]
    rng.shuffle(plan)
    return plan


def search_results(
    world: World, entities: Sequence[str], rng: random.Random
) -> list[dict[str, str]]:
    """The five official `search_results` entries of a question (`result_plan`)."""
    return [search_result(world, name, day) for name, day in result_plan(world, entities, rng)]


# ---------------------------------------------------------------------------------------------
# Questions


def query_time(rng: random.Random) -> str:
    """CRAG's format: '06/29/2024, 10:23:11 PT'."""
    d = EPOCH + dt.timedelta(days=QUERY_DAY)
    return (
        f"{d:%m/%d/%Y}, {rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d} PT"
    )


def _pick(rng: random.Random, world: World, domain: str, pop: str, n: int) -> list[str]:
    pool = [e.name for e in world.in_domain(domain)]
    first = rng.choice([e.name for e in world.in_domain(domain) if e.popularity == pop])
    return [first, *rng.sample([p for p in pool if p != first], n - 1)]


def _numeric(rng: random.Random, domain: str, years: bool = True) -> Attribute:
    kinds = ("number", "year") if years else ("number",)
    return rng.choice([a for a in ATTRIBUTES[domain] if a.kind in kinds])


def make_question(world: World, qtype: str, domain: str, pop: str, rng: random.Random) -> dict:
    """One question of `qtype` about an entity of `domain` with popularity `pop`: the query,
    its answer (and alternatives), dynamism and the entities it is about."""
    w, alt = world, []
    if qtype in ("simple", "simple_w_condition", "false_premise", "post-processing", "multi-hop"):
        ents = _pick(rng, w, domain, pop, 1)
    else:
        ents = _pick(rng, w, domain, pop, 2)
    e = ents[0]
    if qtype == "simple":
        a = rng.choice(ATTRIBUTES[domain])
        query, answer, dyn = f"what is the {a.name} of {e}?", w.value(e, a.name), a.dynamism
    elif qtype == "simple_w_condition":
        a = rng.choice([x for x in ATTRIBUTES[domain] if x.period])
        day = QUERY_DAY - rng.randint(1, 90)
        query = f"what was the {a.name} of {e} on {day_to_date(day)}?"
        answer, dyn = w.value(e, a.name, day), "static"  # a past value never changes
    elif qtype == "comparison":
        a = _numeric(rng, domain)
        while w.value(ents[0], a.name) == w.value(ents[1], a.name):
            ents[1] = _pick(rng, w, domain, pop, 2)[1]
        query = f"which has the higher {a.name}, {ents[0]} or {ents[1]}?"
        answer = max(ents, key=lambda x: int(w.value(x, a.name)))
        dyn = a.dynamism
    elif qtype == "aggregation":
        a = _numeric(rng, domain, years=False)
        query = f"what is the total {a.name} of {ents[0]} and {ents[1]}?"
        answer, dyn = str(sum(int(w.value(x, a.name)) for x in ents)), a.dynamism
    elif qtype == "set":
        a = rng.choice(ATTRIBUTES[domain])
        v = [w.value(x, a.name) for x in ents]
        query = f"list the {a.name} of {ents[0]} and {ents[1]}."
        answer, alt, dyn = f"{v[0]}, {v[1]}", [f"{v[1]}, {v[0]}", f"{v[0]} and {v[1]}"], a.dynamism
    elif qtype == "false_premise":
        other = rng.choice([d for d in DOMAINS if d != domain])
        a = rng.choice([x for x in ATTRIBUTES[other] if x.kind == "number"])
        query, answer, dyn = f"what is the {a.name} of {e}?", INVALID, "static"
    elif qtype == "post-processing":
        a = ATTRIBUTES[domain][0]
        year = int(day_to_date(QUERY_DAY)[:4])
        n = year - int(w.value(e, a.name))
        query = f"how many years before {year} was the {a.name} of {e}?"
        answer, alt, dyn = str(n), [f"{n} years"], "static"
    elif qtype == "multi-hop":
        rel = ATTRIBUTES[domain][-1]
        a = rng.choice(ATTRIBUTES[domain][:-1])
        ents = [e, w.entities[e].relation]
        query = f"what is the {a.name} of the {rel.name} of {e}?"
        answer, dyn = w.value(ents[1], a.name), a.dynamism
    else:
        raise ValueError(f"make_question: qtype={qtype!r} not in {QUESTION_TYPES}")
    attr = a.name
    covered = qtype != "false_premise" and all(w.in_kg(x, attr) for x in ents)
    if qtype == "multi-hop":
        covered = covered and w.in_kg(e, ATTRIBUTES[domain][-1].name)
    return {
        "query": query,
        "answer": answer,
        "alt_ans": alt,
        "static_or_dynamic": dyn,
        "paperlab": {"entities": ents, "attribute": attr, "kg_covered": covered},
    }


def make_questions(world: World, n: int, *, seed: int = 0, split: int = 0) -> list[dict]:
    """`n` official-format records, balanced over domains and popularity, the types in the
    proportions of `QUESTION_MIX` (round-robin over a shuffled grid), each with its five
    search results. Besides the official fields a record holds `paperlab` (entities,
    attribute, kg_covered): kept by the loader, ignored by the systems."""
    if n < 1:
        raise ValueError(f"make_questions: n={n} must be >= 1")
    rng = random.Random(f"questions|{seed}")
    grid = [
        (t, d, p)
        for t in QUESTION_TYPES
        for _ in range(QUESTION_MIX[t])
        for d in DOMAINS
        for p in POPULARITY
    ]
    records = []
    for i in range(n):
        if i % len(grid) == 0:
            rng.shuffle(grid)
        qtype, domain, pop = grid[i % len(grid)]
        q = make_question(world, qtype, domain, pop, rng)
        records.append(
            {
                "interaction_id": f"syn-{seed}-{i:05d}",
                "query_time": query_time(rng),
                "domain": domain,
                "question_type": qtype,
                "static_or_dynamic": q["static_or_dynamic"],
                "query": q["query"],
                "answer": q["answer"],
                "alt_ans": q["alt_ans"],
                "split": split,
                "popularity": pop,
                "search_results": search_results(world, q["paperlab"]["entities"], rng),
                "paperlab": q["paperlab"],
            }
        )
    return records


# ---------------------------------------------------------------------------------------------
# The knowledge graph (the layout of api.py's module docstring)


def kg_from_world(world: World, day: int = QUERY_DAY) -> dict[str, Any]:
    v = world.value
    date = day_to_date(day)
    kg: dict[str, Any] = {
        "open": {"entities": {}},
        "finance": {"companies": {}, "tickers": {}},
        "movie": {"movies": [], "persons": [], "years": {}},
        "music": {"artists": {}, "songs": {}, "billboard": {}, "grammy": {}},
        "sports": {"soccer": [], "nba": {"games": [], "play_by_play": {}}},
    }
    for e in world.entities.values():
        n = e.name
        if e.domain == "open" and world.in_kg(n, "population"):
            structured = {a.name: v(n, a.name, day) for a in ATTRIBUTES["open"]}
            kg["open"]["entities"][n] = {
                "summary_text": " ".join(world.facts(n, day)),
                "summary_structured": structured,
                "raw_mediawiki": "",
            }
        elif e.domain == "finance":
            ticker = n.upper()
            kg["finance"]["companies"][n] = ticker
            history = {}
            for d in range(day - 29, day + 1):
                p = float(v(n, "price", d))
                bar = {"Open": p, "High": p, "Low": p, "Close": p, "Volume": int(v(n, "volume", d))}
                history[f"{day_to_date(d)} 00:00:00 EST"] = bar
            price, eps = float(v(n, "price", day)), float(v(n, "eps", day))
            kg["finance"]["tickers"][ticker] = {
                "price_history": history,
                "detailed_price_history": {f"{date} 09:30:00 EST": history[f"{date} 00:00:00 EST"]},
                "dividends": {},
                "market_capitalization": price * 1e6,
                "eps": eps,
                "pe_ratio": round(price / eps, 2),
                "info": {"longName": n, "ipo_year": int(v(n, "ipo year")), "parent": e.relation},
            }
        elif e.domain == "movie":
            year = v(n, "release year")
            movie_id = len(kg["movie"]["movies"])
            kg["movie"]["movies"].append(
                {
                    "id": movie_id,
                    "title": n,
                    "release_date": f"{year}-01-01",
                    "rating": float(v(n, "rating", day)),
                    "sequel": e.relation,
                }
            )
            kg["movie"]["years"].setdefault(year, {"movie_list": [], "oscar_awards": []})
            kg["movie"]["years"][year]["movie_list"].append(movie_id)
        elif e.domain == "music":
            debut = v(n, "debut year")
            kg["music"]["artists"][n] = {
                "birth_place": "US",
                "birth_date": f"{debut}-01-01",
                "members": [],
                "lifespan": [f"{debut}-01-01", None],
                "works": [],
                "grammy_count": int(v(n, "grammy count", day)),
                "grammy_years": [],
            }
        elif e.domain == "sports":
            game_id = f"{date.replace('-', '')}{len(kg['sports']['nba']['games']):04d}"
            home, away = int(v(n, "live score", day)), int(v(e.relation, "live score", day))
            kg["sports"]["nba"]["games"].append(
                {
                    "game_id": game_id,
                    "game_date": f"{date} 00:00:00",
                    "team_name_home": n,
                    "team_name_away": e.relation,
                    "pts_home": home,
                    "pts_away": away,
                    "wl_home": "W" if home > away else "L",
                }
            )
            kg["sports"]["nba"]["play_by_play"][game_id] = [
                {"period": 1, "description": f"{n} tip-off", "player_name": ""}
            ]
    return kg
