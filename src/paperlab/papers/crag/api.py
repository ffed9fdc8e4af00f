"""CRAG's mock knowledge-graph API as a real HTTP server (FastAPI + uvicorn), and its client.

The endpoints, their names and their POST bodies are the official mock API's (`mock_api/
server.py`): `{"query": ...}` for most, `{"rank", "date"}`, `{"date", "attribute",
"song_name"}`, `{"team_name", "date"}`, `{"game_ids"}`; every answer is `{"result": ...}`.
A body that does not fit is a 4xx JSON error (FastAPI's 422 with the field that failed).

The data is a KG dict (`kg_from_world`: the synthetic world's snapshot on the question day;
or a user's JSON file in the same layout, `load_kg`):

    open:    {"entities": {name: {summary_text, summary_structured, raw_mediawiki}}}
    finance: {"companies": {name: ticker}, "tickers": {ticker: {price_history,
              detailed_price_history, dividends, market_capitalization, eps, pe_ratio, info}}}
    movie:   {"movies": [{id, title, release_date, rating, ...}], "persons": [...],
              "years": {year: {movie_list, oscar_awards}}}
    music:   {"artists": {name: {birth_place, birth_date, members, lifespan, works,
              grammy_count, grammy_years}}, "songs": {name: {author, release_country,
              release_date, grammy_count}}, "billboard": {date: [{rank, song, artist,
              rank_last_week, weeks_in_chart, top_position}]}, "grammy": {best_new_artist,
              song_of_the_year, album_of_the_year: {year: [names]}}}
    sports:  {"soccer": [{date, team, opponent, GF, GA, ...}], "nba": {"games": [{game_id,
              game_date, team_name_home, team_name_away, pts_home, pts_away, wl_home}],
              "play_by_play": {game_id: [events]}}}

    server = serve_api(world.kg())              # a thread on a free port of 127.0.0.1
    api = CragApi(server.url)
    api.finance_get_eps("KIV")                  # {"result": 41.0}
    server.stop()
"""

from __future__ import annotations

import difflib
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from paperlab.core.errors import UserError

# official method name -> (path, body fields); `*` marks an optional field
ENDPOINTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "open_search_entity_by_name": ("/open/search_entity_by_name", ("query",)),
    "open_get_entity": ("/open/get_entity", ("query",)),
    "movie_get_person_info": ("/movie/get_person_info", ("query",)),
    "movie_get_movie_info": ("/movie/get_movie_info", ("query",)),
    "movie_get_year_info": ("/movie/get_year_info", ("query",)),
    "movie_get_movie_info_by_id": ("/movie/get_movie_info_by_id", ("query:int",)),
    "movie_get_person_info_by_id": ("/movie/get_person_info_by_id", ("query:int",)),
    "finance_get_company_name": ("/finance/get_company_name", ("query",)),
    "finance_get_ticker_by_name": ("/finance/get_ticker_by_name", ("query",)),
    "finance_get_price_history": ("/finance/get_price_history", ("query",)),
    "finance_get_detailed_price_history": ("/finance/get_detailed_price_history", ("query",)),
    "finance_get_dividends_history": ("/finance/get_dividends_history", ("query",)),
    "finance_get_market_capitalization": ("/finance/get_market_capitalization", ("query",)),
    "finance_get_eps": ("/finance/get_eps", ("query",)),
    "finance_get_pe_ratio": ("/finance/get_pe_ratio", ("query",)),
    "finance_get_info": ("/finance/get_info", ("query",)),
    "music_search_artist_entity_by_name": ("/music/search_artist_entity_by_name", ("query",)),
    "music_search_song_entity_by_name": ("/music/search_song_entity_by_name", ("query",)),
    "music_get_billboard_rank_date": ("/music/get_billboard_rank_date", ("rank:int", "date*")),
    "music_get_billboard_attributes": (
        "/music/get_billboard_attributes",
        ("date", "attribute", "song_name"),
    ),
    "music_grammy_get_best_artist_by_year": (
        "/music/grammy_get_best_artist_by_year",
        ("query:int",),
    ),
    "music_grammy_get_award_count_by_artist": (
        "/music/grammy_get_award_count_by_artist",
        ("query",),
    ),
    "music_grammy_get_award_count_by_song": ("/music/grammy_get_award_count_by_song", ("query",)),
    "music_grammy_get_best_song_by_year": ("/music/grammy_get_best_song_by_year", ("query:int",)),
    "music_grammy_get_award_date_by_artist": ("/music/grammy_get_award_date_by_artist", ("query",)),
    "music_grammy_get_best_album_by_year": ("/music/grammy_get_best_album_by_year", ("query:int",)),
    "music_grammy_get_all_awarded_artists": ("/music/grammy_get_all_awarded_artists", ()),
    "music_get_artist_birth_place": ("/music/get_artist_birth_place", ("query",)),
    "music_get_artist_birth_date": ("/music/get_artist_birth_date", ("query",)),
    "music_get_members": ("/music/get_members", ("query",)),
    "music_get_lifespan": ("/music/get_lifespan", ("query",)),
    "music_get_song_author": ("/music/get_song_author", ("query",)),
    "music_get_song_release_country": ("/music/get_song_release_country", ("query",)),
    "music_get_song_release_date": ("/music/get_song_release_date", ("query",)),
    "music_get_artist_all_works": ("/music/get_artist_all_works", ("query",)),
    "sports_soccer_get_games_on_date": ("/sports/soccer/get_games_on_date", ("date", "team_name*")),
    "sports_nba_get_games_on_date": ("/sports/nba/get_games_on_date", ("date", "team_name*")),
    "sports_nba_get_play_by_play_data_by_game_ids": (
        "/sports/nba/get_play_by_play_data_by_game_ids",
        ("game_ids:list",),
    ),
}


# ---------------------------------------------------------------------------------------------
# The knowledge graph behind the endpoints


def fuzzy_search(query: str, names: list[str], k: int = 10) -> list[str]:
    """The `k` names best matching `query`: names that occur in it as words first, then by
    similarity (the official API ranks by BM25 / fuzzy matching)."""
    words = set(query.lower().replace("?", " ").replace(",", " ").split())
    q = query.lower()

    def score(name: str) -> float:
        if name.lower() in words or (len(name) > 3 and name.lower() in q):
            return 2.0
        return difflib.SequenceMatcher(None, q, name.lower()).ratio()

    return sorted(names, key=lambda n: (-score(n), n))[:k]


class KnowledgeGraph:
    """The endpoints' logic over a KG dict (module docstring); method names are the official
    client's without the domain prefix handling: `call(method, body)`."""

    def __init__(self, kg: Mapping[str, Any]):
        if not isinstance(kg, Mapping):
            raise ValueError("kg must be a mapping of domain -> tables")
        self.kg = {d: kg.get(d, {}) for d in ("open", "finance", "movie", "music", "sports")}
        fin = self.kg["finance"]
        self.tickers = {t.upper(): v for t, v in fin.get("tickers", {}).items()}
        self.movies = {m["id"]: m for m in self.kg["movie"].get("movies", [])}
        self.persons = {p["id"]: p for p in self.kg["movie"].get("persons", [])}

    def call(self, method: str, body: Mapping[str, Any]) -> Any:
        return getattr(self, method)(**body)

    # open
    def open_search_entity_by_name(self, query: str) -> list[str]:
        return fuzzy_search(query, list(self.kg["open"].get("entities", {})))

    def open_get_entity(self, query: str) -> Any:
        return self.kg["open"].get("entities", {}).get(query)

    # movie
    def movie_get_person_info(self, query: str) -> list[dict]:
        by_name = {p["name"]: p for p in self.persons.values()}
        return [by_name[n] for n in fuzzy_search(query, list(by_name))]

    def movie_get_movie_info(self, query: str) -> list[dict]:
        by_title = {m["title"]: m for m in self.movies.values()}
        return [by_title[n] for n in fuzzy_search(query, list(by_title))]

    def movie_get_year_info(self, query: str) -> Any:
        return self.kg["movie"].get("years", {}).get(str(query))

    def movie_get_movie_info_by_id(self, query: int) -> Any:
        return self.movies.get(query)

    def movie_get_person_info_by_id(self, query: int) -> Any:
        return self.persons.get(query)

    # finance
    def finance_get_company_name(self, query: str) -> list[str]:
        return fuzzy_search(query, list(self.kg["finance"].get("companies", {})))

    def finance_get_ticker_by_name(self, query: str) -> Any:
        return self.kg["finance"].get("companies", {}).get(query)

    def _ticker(self, query: str, key: str) -> Any:
        return self.tickers.get(query.upper(), {}).get(key)

    def finance_get_price_history(self, query: str) -> Any:
        return self._ticker(query, "price_history")

    def finance_get_detailed_price_history(self, query: str) -> Any:
        return self._ticker(query, "detailed_price_history")

    def finance_get_dividends_history(self, query: str) -> Any:
        return self._ticker(query, "dividends")

    def finance_get_market_capitalization(self, query: str) -> Any:
        return self._ticker(query, "market_capitalization")

    def finance_get_eps(self, query: str) -> Any:
        return self._ticker(query, "eps")

    def finance_get_pe_ratio(self, query: str) -> Any:
        return self._ticker(query, "pe_ratio")

    def finance_get_info(self, query: str) -> Any:
        return self._ticker(query, "info")

    # music
    def _artist(self, name: str, key: str) -> Any:
        return self.kg["music"].get("artists", {}).get(name, {}).get(key)

    def _song(self, name: str, key: str) -> Any:
        return self.kg["music"].get("songs", {}).get(name, {}).get(key)

    def _grammy(self, table: str, year: int) -> Any:
        return self.kg["music"].get("grammy", {}).get(table, {}).get(str(year), [])

    def music_search_artist_entity_by_name(self, query: str) -> list[str]:
        return fuzzy_search(query, list(self.kg["music"].get("artists", {})))

    def music_search_song_entity_by_name(self, query: str) -> list[str]:
        return fuzzy_search(query, list(self.kg["music"].get("songs", {})))

    def music_get_billboard_rank_date(self, rank: int, date: str | None = None) -> Any:
        charts = self.kg["music"].get("billboard", {})
        rows = [r for d, chart in charts.items() if date in (None, d) for r in chart]
        hits = [r for r in rows if r.get("rank") == rank]
        return [r.get("song") for r in hits], [r.get("artist") for r in hits]

    def music_get_billboard_attributes(self, date: str, attribute: str, song_name: str) -> Any:
        for r in self.kg["music"].get("billboard", {}).get(date, []):
            if r.get("song") == song_name:
                return r.get(attribute)
        return None

    def music_grammy_get_best_artist_by_year(self, query: int) -> Any:
        return self._grammy("best_new_artist", query)

    def music_grammy_get_award_count_by_artist(self, query: str) -> Any:
        return self._artist(query, "grammy_count")

    def music_grammy_get_award_count_by_song(self, query: str) -> Any:
        return self._song(query, "grammy_count")

    def music_grammy_get_best_song_by_year(self, query: int) -> Any:
        return self._grammy("song_of_the_year", query)

    def music_grammy_get_award_date_by_artist(self, query: str) -> Any:
        return self._artist(query, "grammy_years")

    def music_grammy_get_best_album_by_year(self, query: int) -> Any:
        return self._grammy("album_of_the_year", query)

    def music_grammy_get_all_awarded_artists(self) -> list[str]:
        table = self.kg["music"].get("grammy", {}).get("best_new_artist", {})
        return sorted({a for names in table.values() for a in names})

    def music_get_artist_birth_place(self, query: str) -> Any:
        return self._artist(query, "birth_place")

    def music_get_artist_birth_date(self, query: str) -> Any:
        return self._artist(query, "birth_date")

    def music_get_members(self, query: str) -> Any:
        return self._artist(query, "members")

    def music_get_lifespan(self, query: str) -> Any:
        return self._artist(query, "lifespan")

    def music_get_song_author(self, query: str) -> Any:
        return self._song(query, "author")

    def music_get_song_release_country(self, query: str) -> Any:
        return self._song(query, "release_country")

    def music_get_song_release_date(self, query: str) -> Any:
        return self._song(query, "release_date")

    def music_get_artist_all_works(self, query: str) -> Any:
        return self._artist(query, "works")

    # sports
    def sports_soccer_get_games_on_date(self, date: str, team_name: str | None = None) -> Any:
        rows = self.kg["sports"].get("soccer", [])
        return [
            r
            for r in rows
            if str(r.get("date", "")).startswith(date) and team_name in (None, r.get("team"))
        ]

    def sports_nba_get_games_on_date(self, date: str, team_name: str | None = None) -> Any:
        games = self.kg["sports"].get("nba", {}).get("games", [])
        return [
            g
            for g in games
            if str(g.get("game_date", "")).startswith(date)
            and team_name in (None, g.get("team_name_home"), g.get("team_name_away"))
        ]

    def sports_nba_get_play_by_play_data_by_game_ids(self, game_ids: list[str]) -> Any:
        pbp = self.kg["sports"].get("nba", {}).get("play_by_play", {})
        return {g: pbp.get(g, []) for g in game_ids}


def load_kg(path: str | os.PathLike) -> dict[str, Any]:
    """A user's KG in the layout of the module docstring (one JSON file)."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"path={str(file)!r}: no such KG file")
    try:
        kg = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{file}: not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(kg, dict):
        raise ValueError(f"{file}: expected a JSON object of domain -> tables")
    return kg


# ---------------------------------------------------------------------------------------------
# The FastAPI app


def _body_model(method: str, fields: tuple[str, ...]) -> type:
    from pydantic import create_model

    types = {"int": (int, ...), "list": (list[str], ...)}
    spec: dict[str, Any] = {}
    for f in fields:
        name, _, typ = f.rstrip("*").partition(":")
        spec[name] = (str | None, None) if f.endswith("*") else types.get(typ, (str, ...))
    return create_model(f"Body_{method}", **spec)


def create_app(kg: Mapping[str, Any]) -> Any:
    """A FastAPI app answering the official endpoints from `kg`."""
    from fastapi import FastAPI

    graph = KnowledgeGraph(kg)
    app = FastAPI(title="CRAG API (paperlab)", description="CRAG's mock KG API")

    @app.get("/")
    async def root() -> dict[str, str]:
        return {"message": "The CRAG API service is running"}

    def route(method: str, fields: tuple[str, ...]) -> Callable:
        if not fields:

            async def no_body() -> dict[str, Any]:
                return {"result": graph.call(method, {})}

            return no_body
        model = _body_model(method, fields)

        async def with_body(body):  # noqa: ANN001 - annotated below
            return {"result": graph.call(method, body.model_dump())}

        # the body's pydantic model (a local name: `from __future__ import annotations` would
        # leave FastAPI a string it cannot resolve)
        with_body.__annotations__ = {"body": model, "return": dict}
        return with_body

    for method, (path, fields) in ENDPOINTS.items():
        app.post(path, name=method)(route(method, fields))
    return app


class ApiServer:
    """uvicorn serving `create_app(kg)` in a daemon thread; `url`, `stop()` (idempotent)."""

    def __init__(self, kg: Mapping[str, Any], *, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = host, self.sock.getsockname()[1]
        config = uvicorn.Config(create_app(kg), log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> ApiServer:
        if self.server.started:
            return self
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"CRAG API server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.should_exit = True
            self.thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_api(kg: Mapping[str, Any], *, host: str = "127.0.0.1", port: int = 0) -> ApiServer:
    """A started `ApiServer` (port 0: a free port)."""
    return ApiServer(kg, host=host, port=port).start()


# ---------------------------------------------------------------------------------------------
# The client


class CragApi:
    """The official client's methods (`pycragapi.CRAG`), POSTing the official bodies as JSON.

    The server is `url`, else `$CRAG_SERVER`, else http://127.0.0.1:8000 (the official
    default). An unreachable server or an error status is one `UserError` line."""

    def __init__(self, url: str | None = None, *, timeout: float = 10.0):
        self.server = (url or os.environ.get("CRAG_SERVER") or "http://127.0.0.1:8000").rstrip("/")
        self.timeout = timeout
        self.calls = 0

    def post(self, path: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"accept": "application/json", "content-type": "application/json"}
        req = urllib.request.Request(self.server + path, data=data, headers=headers, method="POST")
        self.calls += 1
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:200]
            raise UserError(f"CRAG API {self.server}{path}: HTTP {e.code} ({detail})") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise UserError(
                f"CRAG API at {self.server} unreachable ({reason}); start it with "
                "`paperlab crag serve-api` or pass --api-url"
            ) from None


def _client_method(path: str, fields: tuple[str, ...]) -> Callable[..., dict[str, Any]]:
    names = [f.rstrip("*").partition(":")[0] for f in fields]

    def method(self: CragApi, *args: Any, **kwargs: Any) -> dict[str, Any]:
        body = dict(zip(names, args, strict=False))
        body.update(kwargs)
        for f, name in zip(fields, names, strict=True):
            if f.endswith("*"):
                body.setdefault(name, None)
        return self.post(path, body if fields else None)

    return method


for _name, (_path, _fields) in ENDPOINTS.items():
    setattr(CragApi, _name, _client_method(_path, _fields))
