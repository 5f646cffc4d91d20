"Strategy spaces: counts, order, validation errors, composition convention, StrategySpace edits."
import json
from collections import Counter
from dataclasses import asdict
import pytest
from also.core import ConfigError, DataError
from also.bandits.spaces import SPACES, STRATEGY_HEADER, Strategy, StrategySpace, compose, load_space, validate_strategies

V3_NAMES = ["No Strategy", "Integrative Negotiation", "Reciprocity Trigger", "BATNA Leverage", "Strategic Self-Presentation",
            "Tit-for-Tat", "Rational Choice Persuasion", "Face-Saving Validation", "Constructive Controversy",
            "Outcome Interdependence", "GRIT", "Active Listening Probe", "Logrolling"]


def test_v3_order_and_fields():
    s = load_space("v3")
    assert [x.name for x in s] == V3_NAMES
    assert s[0].id == "no_strategy" and s[0].text == "" and s[0].theory is None
    for x in s[1:]:
        assert x.theory and x.text.startswith("In your response,") and 40 <= len(x.text.split()) <= 60


@pytest.mark.parametrize("name,n", list(SPACES.items()))
def test_counts(name, n):
    s = load_space(name)
    assert len(s) == n and len({x.text for x in s}) == n


def test_size_ablations_are_prefixes():
    v3 = load_space("v3")
    for k in (3, 6, 12): assert load_space(f"v3_size{k}") == v3[:k + 1]


@pytest.mark.parametrize("name,per", [("v3_pool24", 2), ("v3_pool48", 4)])
def test_pools_cover_families_evenly(name, per):
    s = load_space(name)
    fam = Counter(x.family for x in s[1:])
    assert len(fam) == 12 and set(fam.values()) == {per}
    ids = {x.id for x in load_space("v3")}
    assert all(x.parent in ids for x in s[13:]) and all(x.parent is None for x in s[:13])


def test_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown strategy space 'v7'"): load_space("v7")
    p = tmp_path / "empty.json"; p.write_text(json.dumps({"strategies": []}))
    with pytest.raises(ConfigError, match="is empty"): load_space(str(p))
    v3 = load_space("v3")
    p.write_text(json.dumps({"strategies": [asdict(v3[0]), asdict(v3[1]), {**asdict(v3[2]), "text": v3[1].text}]}))
    with pytest.raises(DataError, match="same text"): load_space(str(p))
    with pytest.raises(DataError, match="expected 5 arms, found 13"): validate_strategies(v3, "x", 5)
    with pytest.raises(DataError, match="duplicate strategy ids"): validate_strategies(v3 + [Strategy(v3[1].id, "x", "In your response, x.")])


def test_compose_one_convention():
    assert compose("Bio.", Strategy("no_strategy", "No Strategy", "")) == "Bio."
    assert compose("Bio.\n", "In your response, be brief.") == f"Bio.\n\n{STRATEGY_HEADER} In your response, be brief."
    sp = StrategySpace("Bio.", "v3_size3")
    assert sp.texts == [compose("Bio.", s) for s in load_space("v3_size3")]


def test_strategy_space_edits():
    sp = StrategySpace("Bio.")
    new = Strategy("new", "New", "In your response, ask one question only.", parent="surface_hidden_concerns")
    assert sp.add(new) == 13 and sp[13].endswith("ask one question only.") and sp.version == 1
    with pytest.raises(DataError, match="same text"): sp.add(Strategy("dup", "Dup", new.text))
    with pytest.raises(ConfigError, match="arm 0 is the bare persona"): sp.replace(0, new)
    sp.replace(4, Strategy("r4", "R4", "In your response, mention a deadline."))
    assert sp.ids[4] == "r4" and sp.version == 2 and len(sp) == 14
    assert StrategySpace.from_dict(sp.to_dict()).texts == sp.texts


def test_thinking_modes():
    th = load_space("thinking")
    assert [x.id for x in th] == ["no_mode", "intuitive", "shallow", "strategic", "deep"] and th[0].text == ""
    assert all(x.text.startswith("Before replying,") and "AMPO" in x.theory and "Wang et al. (2025)" in x.theory for x in th[1:])
    assert SPACES["thinking"] == 5 and SPACES["v3_x_thinking"] == 65


def test_crossed_space_order_ids_and_texts():
    from also.bandits.spaces import combine, cross_spaces
    v3, th, x = load_space("v3"), load_space("thinking"), load_space("v3_x_thinking")
    assert len(x) == 65 == 1 + 12 + 4 + 48 and len({s.id for s in x}) == 65 and len({s.text for s in x}) == 65
    assert x[0].id == "no_strategy+no_mode" and x[0].text == "" and x[0].name == "No Strategy"
    assert all(s.id.count("+") == 1 for s in x)
    assert [s.text for s in x[1:13]] == [s.text for s in v3[1:]] and [s.name for s in x[1:13]] == [s.name for s in v3[1:]]
    assert [s.text for s in x[13:17]] == [m.text for m in th[1:]] and x[13].id == "no_strategy+intuitive"
    pairs = [(a.id, b.id) for a in v3[1:] for b in th[1:]]
    assert [tuple(s.id.split("+")) for s in x[17:]] == pairs
    s = x[17 + 4 * 2 + 3]                                    # 3rd strategy x 4th mode
    assert s.id == "pressure_tactics+deep" and s.text == f"{v3[3].text} {th[4].text}"
    assert s.name == "BATNA Leverage + Deep Deliberation" and v3[3].theory in s.theory and th[4].theory in s.theory
    assert combine(v3[3], th[4]) == s and cross_spaces(v3, th) == x


def test_crossed_arms_compose_with_the_one_convention():
    x = load_space("v3_x_thinking")
    assert compose("Bio.", x[0]) == "Bio."
    assert compose("Bio.", x[20]) == f"Bio.\n\n{STRATEGY_HEADER} {x[20].text}"
    sp = StrategySpace("Bio.", "v3_x_thinking")
    assert len(sp) == 65 and sp.texts == [compose("Bio.", s) for s in x] and sp.ids[13] == "no_strategy+intuitive"
