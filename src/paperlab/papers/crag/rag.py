"""CRAG's baseline systems (paper Sec. 5; the official `models/` baselines):

- **llm-only**: the question alone (the official vanilla prompt: answer succinctly or "I don't
  know");
- **rag** (straightforward RAG): the pages' HTML -> text -> sentence chunks -> MiniLM
  (all-MiniLM-L6-v2) cosine top-k -> the references in the prompt;
- **rag-kg**: the same plus the mock KG API: the entities the question names are looked up
  through the domain's endpoints, the results rendered as sentences, and the best `kg_k` of
  them (by the same cosine) put before the page sentences.

    embedder = MiniLM()                           # the packaged model, no download
    system = RagSystem("rag-kg", client, "reader", embedder=embedder, api=CragApi(url))
    messages = system.prompts(records)            # retrieval and KG calls (sync)
    replies = client.run(system.answer_all(records))
"""

from __future__ import annotations

import asyncio
import html.parser
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from paperlab.core.embed import Embedder, top_k
from paperlab.core.embed import MiniLM as MiniLM  # re-exported: crag.MiniLM
from paperlab.papers.crag.prompts import answer_messages

SYSTEMS = ("llm-only", "rag", "rag-kg")
MAX_SENTENCE_CHARS = 1000  # the official MAX_CONTEXT_SENTENCE_LENGTH


# ---------------------------------------------------------------------------------------------
# HTML -> text -> sentence chunks


class _TextParser(html.parser.HTMLParser):
    SKIP = {"script", "style", "noscript"}
    BLOCK = {"p", "div", "h1", "h2", "h3", "h4", "li", "tr", "title", "footer", "br", "section"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(page: str) -> str:
    """The visible text of an HTML page (scripts and styles dropped), one line per block."""
    parser = _TextParser()
    parser.feed(page or "")
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentence_chunks(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Sentences of `text`, each cut to `max_chars`.

    DEVIATION: sentences end at . ! ? and at block boundaries (the official baseline runs
    blingfire over the text joined by spaces); blingfire is not a dependency here."""
    out = []
    for line in text.splitlines():
        out += [s.strip()[:max_chars] for s in _SENTENCE_END.split(line) if s.strip()]
    return out


def page_chunks(search_results: Sequence[Mapping[str, Any]]) -> list[str]:
    """The de-duplicated sentence chunks of a record's pages (first occurrence order)."""
    seen: dict[str, None] = {}
    for page in search_results:
        for s in sentence_chunks(html_to_text(page.get("page_result", ""))):
            seen.setdefault(s, None)
    return list(seen)


# ---------------------------------------------------------------------------------------------
# Embeddings


# ---------------------------------------------------------------------------------------------
# The KG: entities named in the question -> facts as sentences


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _named(candidates: Sequence[str], query: str) -> list[str]:
    """The candidates the query names as words (the API's ranking otherwise)."""
    words = _words(query)
    return [c for c in candidates if isinstance(c, str) and c.lower() in words]


def _num(x: Any) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def kg_sentences(api: Any, record: Mapping[str, Any]) -> list[str]:
    """Facts about the entities the question names, from the mock API, as sentences."""
    query, domain = record["query"], record.get("domain", "open")
    date = _query_date(record.get("query_time", ""))
    out: list[str] = []
    if domain == "finance":
        for name in _named(api.finance_get_company_name(query)["result"], query):
            ticker = api.finance_get_ticker_by_name(name)["result"]
            if not ticker:
                continue
            day = (api.finance_get_price_history(ticker)["result"] or {}).get(
                f"{date} 00:00:00 EST"
            )
            info = api.finance_get_info(ticker)["result"] or {}
            eps = api.finance_get_eps(ticker)["result"]
            if day:
                out += [f"the price of {name} is {_num(day['Close'])}."]
                out += [f"the volume of {name} is {_num(day['Volume'])}."]
            if eps is not None:
                out.append(f"the eps of {name} is {_num(eps)}.")
            if "ipo_year" in info:
                out.append(f"the ipo year of {name} is {info['ipo_year']}.")
            if "parent" in info:
                out.append(f"the parent of {name} is {info['parent']}.")
    elif domain == "movie":
        for m in api.movie_get_movie_info(query)["result"]:
            if m.get("title") in _named([m.get("title")], query):
                t = m["title"]
                out.append(f"the release year of {t} is {str(m.get('release_date', ''))[:4]}.")
                if m.get("rating") is not None:
                    out.append(f"the rating of {t} is {_num(m['rating'])}.")
                if m.get("sequel"):
                    out.append(f"the sequel of {t} is {m['sequel']}.")
    elif domain == "music":
        for name in _named(api.music_search_artist_entity_by_name(query)["result"], query):
            birth = api.music_get_artist_birth_date(name)["result"]
            count = api.music_grammy_get_award_count_by_artist(name)["result"]
            if birth:
                out.append(f"the debut year of {name} is {str(birth)[:4]}.")
            if count is not None:
                out.append(f"the grammy count of {name} is {_num(count)}.")
    elif domain == "sports":
        words = _words(query)
        for g in api.sports_nba_get_games_on_date(date)["result"]:
            for side in ("home", "away"):
                team = g.get(f"team_name_{side}")
                if isinstance(team, str) and team.lower() in words:
                    out.append(f"the live score of {team} is {_num(g[f'pts_{side}'])}.")
    else:
        for name in _named(api.open_search_entity_by_name(query)["result"], query):
            entity = api.open_get_entity(name)["result"] or {}
            for key, value in (entity.get("summary_structured") or {}).items():
                out.append(f"the {key} of {name} is {value}.")
    # DEVIATION: the query planner is rules, not an LLM (the official KG baseline has an LLM
    # extract the entity and the metric asked for): the entities the question names, and the
    # facts whose attribute it names
    asked = [f for f in dict.fromkeys(out) if _attribute(f) and f" {_attribute(f)} of " in query]
    return asked


def _attribute(fact: str) -> str:
    """'the eps of kiv is 41.' -> 'eps'."""
    m = re.match(r"the (.+?) of ", fact)
    return m[1] if m else ""


def _query_date(query_time: str) -> str:
    """'06/29/2024, 10:23:11 PT' -> '2024-06-29' ('' if it is not in that form)."""
    m = re.match(r"(\d{2})/(\d{2})/(\d{4})", query_time or "")
    return f"{m[3]}-{m[1]}-{m[2]}" if m else ""


# ---------------------------------------------------------------------------------------------
# The systems


@dataclass(kw_only=True)
class RagSystem:
    """One of `SYSTEMS` answering with a chat model over `client` (an `LLMClient`).

    `k`: page sentences in the prompt (the official baseline takes 20; the tiny reader reads
    3); `kg_k`: KG sentences before them; `style`: the prompts' style (`prompts.py`)."""

    kind: str
    client: Any
    model: str
    embedder: Embedder | None = None
    api: Any = None
    k: int = 20
    kg_k: int = 2
    style: str = "official"
    max_tokens: int = 50  # the official baseline's max new tokens
    concurrency: int = 16

    def __post_init__(self) -> None:
        if self.kind not in SYSTEMS:
            raise ValueError(f"kind={self.kind!r}: one of {', '.join(SYSTEMS)}")
        if self.kind != "llm-only" and self.embedder is None:
            raise ValueError(f"kind={self.kind!r} needs an embedder (MiniLM())")
        if self.kind == "rag-kg" and self.api is None:
            raise ValueError("kind='rag-kg' needs api (a CragApi)")
        if self.k < 0 or self.kg_k < 0 or self.max_tokens < 1 or self.concurrency < 1:
            raise ValueError("k, kg_k >= 0; max_tokens, concurrency >= 1")

    def references(self, record: Mapping[str, Any]) -> list[str] | None:
        if self.kind == "llm-only":
            return None
        refs = top_k(
            record["query"], page_chunks(record.get("search_results", [])), self.embedder, self.k
        )
        if self.kind == "rag-kg":
            facts = kg_sentences(self.api, record)
            refs = top_k(record["query"], facts, self.embedder, self.kg_k) + refs
        return refs

    def prompts(self, records: Sequence[Mapping[str, Any]]) -> list[list[dict[str, str]]]:
        """The messages of every record (retrieval and KG calls happen here)."""
        if self.embedder is not None and self.kind != "llm-only":  # one batch for all chunks
            texts = [r["query"] for r in records]
            for r in records:
                texts += page_chunks(r.get("search_results", []))
            self.embedder.encode(texts)
        return [
            answer_messages(
                r["query"], r.get("query_time", ""), self.references(r), style=self.style
            )
            for r in records
        ]

    async def reply(self, messages: list[dict[str, str]]) -> str:
        out = await self.client.chat(
            self.model, messages, temperature=0.0, max_tokens=self.max_tokens
        )
        return out.text.strip()

    async def answer_all(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        """Every record's answer, in order (`concurrency` requests at a time)."""
        prompts = self.prompts(records)
        gate = asyncio.Semaphore(self.concurrency)

        async def one(messages):
            async with gate:
                return await self.reply(messages)

        return list(await asyncio.gather(*(one(m) for m in prompts)))
