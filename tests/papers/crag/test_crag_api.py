"""The mock KG API over real HTTP (uvicorn in a thread on a free port): every official client
method answers, the values are the world's, bad bodies are 4xx JSON errors, and an unreachable
server is one line."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from paperlab.core.errors import UserError
from paperlab.papers.crag import ENDPOINTS, CragApi, load_kg, make_world, serve_api
from paperlab.papers.crag.world import QUERY_DAY, day_to_date


@pytest.fixture(scope="module")
def world():
    return make_world(6, seed=3)


@pytest.fixture(scope="module")
def api(world):
    server = serve_api(world.kg())
    try:
        yield CragApi(server.url)
    finally:
        server.stop()


def _one(world, domain: str, popularity: str = "head") -> str:
    return next(e.name for e in world.in_domain(domain) if e.popularity == popularity)


def test_every_official_method_answers_with_a_result(api):
    api = CragApi(api.server)  # a fresh call count
    for method, (_, fields) in ENDPOINTS.items():
        args = []
        for f in fields:
            typ = f.rstrip("*").partition(":")[2]
            args.append(1 if typ == "int" else ["g1"] if typ == "list" else "x")
        out = getattr(api, method)(*args)
        assert set(out) == {"result"}, method
    assert api.calls == len(ENDPOINTS) == 38


def test_values_are_the_worlds_on_the_question_day(api, world):
    date = day_to_date(QUERY_DAY)
    fin = _one(world, "finance")
    assert api.finance_get_company_name(f"what is the eps of {fin}?")["result"][0] == fin
    ticker = api.finance_get_ticker_by_name(fin)["result"]
    assert ticker == fin.upper()
    assert api.finance_get_eps(ticker)["result"] == float(world.value(fin, "eps"))
    day = api.finance_get_price_history(ticker)["result"][f"{date} 00:00:00 EST"]
    assert day["Close"] == float(world.value(fin, "price"))
    movie = _one(world, "movie")
    info = api.movie_get_movie_info(movie)["result"][0]
    assert info["title"] == movie and info["release_date"][:4] == world.value(movie, "release year")
    assert api.movie_get_movie_info_by_id(info["id"])["result"] == info
    band = _one(world, "music")
    assert api.music_grammy_get_award_count_by_artist(band)["result"] == int(
        world.value(band, "grammy count")
    )
    team = _one(world, "sports")
    games = api.sports_nba_get_games_on_date(date, team)["result"]
    assert games and all(team in (g["team_name_home"], g["team_name_away"]) for g in games)
    ids = [g["game_id"] for g in games]
    assert set(api.sports_nba_get_play_by_play_data_by_game_ids(ids)["result"]) == set(ids)
    place = _one(world, "open")
    entity = api.open_get_entity(place)["result"]
    assert entity["summary_structured"]["population"] == world.value(place, "population")
    # the open-domain KG leaves tail entities out
    assert api.open_get_entity(_one(world, "open", "tail"))["result"] is None


def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize(
    "path, body",
    [
        ("/movie/get_movie_info_by_id", b'{"query": "not a number"}'),
        ("/open/get_entity", b'{"entity": "x"}'),
        ("/music/get_billboard_rank_date", b'{"date": "2024-01-01"}'),
        ("/sports/nba/get_play_by_play_data_by_game_ids", b'{"game_ids": "g1"}'),
        ("/finance/get_eps", b"{broken json"),
    ],
)
def test_bad_bodies_get_4xx_json(api, path, body):
    status, payload = _post(api.server + path, body)
    assert 400 <= status < 500 and "detail" in payload
    with pytest.raises(UserError, match="HTTP 4"):
        api.post(path, json.loads(body) if body.startswith(b'{"') else {})


def test_unreachable_server_is_one_line(api):
    dead = CragApi("http://127.0.0.1:9", timeout=2)
    with pytest.raises(UserError) as e:
        dead.open_get_entity("x")
    assert "unreachable" in str(e.value) and len(str(e.value).splitlines()) == 1


def test_kg_file_round_trip(tmp_path, world):
    path = tmp_path / "kg.json"
    path.write_text(json.dumps(world.kg()))
    kg = load_kg(path)
    with serve_api(kg) as server:
        place = _one(world, "open")
        assert CragApi(server.url).open_search_entity_by_name(place)["result"][0] == place
    (tmp_path / "bad.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_kg(tmp_path / "bad.json")
