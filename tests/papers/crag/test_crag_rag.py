"""The RAG pipeline's pieces: HTML -> text -> sentence chunks, MiniLM retrieval (the packaged
model, offline), the KG facts over real HTTP, the prompts, and the miniature's task helpers."""

from __future__ import annotations

import numpy as np
import pytest

from paperlab.papers.crag import (
    CragApi,
    MiniLM,
    RagSystem,
    answer_messages,
    html_to_text,
    make_questions,
    make_world,
    page_chunks,
    sentence_chunks,
    serve_api,
    top_k,
)
from paperlab.papers.crag.miniature import answer_marks, judge_reply, read_answer
from paperlab.papers.crag.rag import kg_sentences
from paperlab.papers.crag.scoring import parse_judge_reply


@pytest.fixture(scope="module")
def minilm():
    return MiniLM()


def test_html_to_text_drops_scripts_and_keeps_blocks():
    page = (
        "<html><head><title>kiv | finance</title><style>p{}</style><script>var x=1;</script>"
        "</head><body><h1>kiv</h1><p>the eps of kiv is 41. the price of kiv is 17.</p>"
        "<footer>updated &amp; checked.</footer></body></html>"
    )
    text = html_to_text(page)
    assert "var x" not in text and "p{}" not in text
    assert text.splitlines() == [
        "kiv | finance",
        "kiv",
        "the eps of kiv is 41. the price of kiv is 17.",
        "updated & checked.",
    ]
    assert sentence_chunks(text) == [
        "kiv | finance",
        "kiv",
        "the eps of kiv is 41.",
        "the price of kiv is 17.",
        "updated & checked.",
    ]
    assert sentence_chunks("a" * 5000)[0] == "a" * 1000  # the official sentence limit


def test_minilm_retrieves_the_stated_fact(minilm):
    v = minilm.encode(["the eps of kiv is 41.", "the eps of kiv is 41."])
    assert v.shape == (2, 384) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    chunks = ["the price of dob is 17.", "kiv", "the eps of kiv is 41.", "the rating of kiv is 9."]
    assert top_k("what is the eps of kiv?", chunks, minilm, 2)[0] == "the eps of kiv is 41."
    assert top_k("q", [], minilm, 3) == [] and top_k("q", chunks, minilm, 0) == []


def test_kg_facts_over_http_name_the_asked_attribute():
    world = make_world(6, seed=2)
    records = make_questions(world, 80, seed=2)
    covered = [r for r in records if r["paperlab"]["kg_covered"] and r["question_type"] == "simple"]
    assert covered
    with serve_api(world.kg()) as server:
        api = CragApi(server.url)
        for r in covered:
            facts = kg_sentences(api, r)
            entity, attr = r["paperlab"]["entities"][0], r["paperlab"]["attribute"]
            assert f"the {attr} of {entity} is {r['answer']}." in facts, r["query"]
            assert all(f" {f.split(' of ')[0][4:]} of " in r["query"] for f in facts)


def test_prompts_official_and_mini():
    official = answer_messages("what is x?", "06/29/2024, 10:00:00 PT", ["best", "second"])
    assert official[0]["role"] == "system" and "I don't know" in official[0]["content"]
    user = official[1]["content"]
    assert user.index("- best") < user.index("- second") and "Current Time" in user
    mini = answer_messages("what is x?", "", ["best", "second"], style="mini")
    assert mini == [
        {"role": "user", "content": "question: what is x?\nreferences:\nsecond\nbest"}
    ]  # best next to the answer
    assert answer_messages("q", "t", None, style="mini")[0]["content"] == "question: q"
    with pytest.raises(ValueError, match="style"):
        answer_messages("q", "t", None, style="fancy")


def test_rag_system_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        RagSystem(kind="oracle", client=None, model="m")
    with pytest.raises(ValueError, match="embedder"):
        RagSystem(kind="rag", client=None, model="m")
    with pytest.raises(ValueError, match="api"):
        RagSystem(kind="rag-kg", client=None, model="m", embedder=object())


def test_miniature_reading_rule_and_judge_work():
    refs = ["the eps of kiv is 41.", "the eps of kiv is 39.", "the eps of dob is 7."]
    assert read_answer("q", refs, "kiv", "eps") == "41"  # the best-ranked statement
    assert read_answer("q", refs[2:], "kiv", "eps") == "i don't know"
    assert answer_marks("it is 41", "41") == "11= 44= 00= 00="
    assert answer_marks("it is dob", "kiv") == "dkx oix bvx"
    assert answer_marks("lci", "88") == "-8x -8x -0x -0x"  # no number where one is due
    assert parse_judge_reply(judge_reply("it is 41", "41", 1)) == 1
    assert parse_judge_reply(judge_reply("it is 42", "41", 0)) == 0


def test_world_pages_chunk_into_facts():
    world = make_world(3, seed=0)
    record = make_questions(world, 1, seed=0)[0]
    chunks = page_chunks(record["search_results"])
    assert len(chunks) == len(set(chunks))
    assert any(c.startswith("the ") and c.endswith(".") for c in chunks)


def test_real_endpoints_need_a_crag_table(tmp_path):
    from paperlab.core.errors import SkipClaim
    from paperlab.papers.crag.experiments import real_setup

    path = tmp_path / "paperlab.toml"
    path.write_text('[models.m]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n')
    with pytest.raises(SkipClaim, match=r"\[crag\]"):
        real_setup(str(path))
    path.write_text(path.read_text() + '[crag]\nreader = "m"\njudge = "m"\n')
    setup = real_setup(str(path))
    assert (setup.reader, setup.judge, setup.style) == ("m", "m", "official")
