"""The library notebooks carry their (small, deterministic) outputs, so they read well on the code host without a
kernel (tools/notebook_outputs.sh refreshes them); the experiment notebooks link to their executed copies from the
committed main job instead. These checks fail on a notebook stripped of its outputs, on an output that leaks this
machine's paths or a failure, and on a link that points nowhere."""
import json, re
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = sorted((ROOT / "nbs").glob("*.ipynb"))
EXP = sorted((ROOT / "nbs" / "experiments").glob("*.ipynb"))


def outputs(p):
    return [(c["id"], o) for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]


def problems(p):
    "What is wrong with one notebook's kept outputs."
    bad = []
    for cid, o in outputs(p):
        text = json.dumps(o)
        if o.get("output_type") == "error": bad.append(f"{cid}: an error output")
        if o.get("output_type") == "stream" and o.get("name") == "stderr": bad.append(f"{cid}: stderr")
        if re.search(r"/tmp/|/root/|/home/|" + re.escape(str(ROOT)), text): bad.append(f"{cid}: a machine path")
    return bad


def test_library_notebooks_keep_their_outputs():
    have = {p.name: len(outputs(p)) for p in LIB}
    assert sum(n > 0 for n in have.values()) >= 20, have              # most library notebooks show something
    ceiling = [o for _, o in outputs(ROOT / "nbs/12c_bandits.also.ipynb") if "image/png" in o.get("data", {})]
    assert ceiling, "the ALSO ceiling plot lost its image"
    for p in LIB: assert problems(p) == [], (p.name, problems(p))


def test_the_output_check_can_fail(tmp_path):
    nb = json.loads((ROOT / "nbs/12c_bandits.also.ipynb").read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code" and c.get("outputs"))
    cell["outputs"] += [{"output_type": "stream", "name": "stderr", "text": ["warning\n"]},
                        {"output_type": "stream", "name": "stdout", "text": [f"wrote {ROOT}/results/x.csv\n"]}]
    (p := tmp_path / "nb.ipynb").write_text(json.dumps(nb))
    assert len(problems(p)) == 2


@pytest.mark.parametrize("p", EXP, ids=lambda p: p.stem)
def test_experiment_notebooks_link_to_what_they_made(p):
    first = "".join(json.loads(p.read_text())["cells"][0]["source"])
    links = re.findall(r"\]\((\.\./\.\./[^)]+)\)", first)
    assert links, f"{p.name}: no link to its executed copy or its figures"
    for l in links: assert (p.parent / l).resolve().exists(), f"{p.name}: {l} does not exist"
