"""Give the library notebooks their outputs (tools/notebook_outputs.sh runs this): keep an output only where two
executions agree (deterministic), drop stderr streams and noise lines, cap sizes. Usage:
    python tools/keep_outputs.py RUN_A_DIR RUN_B_DIR NBS_DIR   # RUN_*: copies of nbs/ executed with nbdev-test --save
"""
import json, re, sys, copy
from pathlib import Path

A, B, DEST = map(Path, sys.argv[1:4])
NOISE = re.compile(r"^(Using local JSON storage backend at .*|.*IProgress not found.*|.*tqdm/auto\.py.*|\s*from \.autonotebook.*)$")
MACHINE = re.compile(r"/tmp/|/root/|/home/|" + re.escape(str(Path(__file__).resolve().parents[1])))
MAX_TEXT, MAX_IMG = 6000, 200_000

def norm(o):
    o = copy.deepcopy(o); o.pop("execution_count", None)
    o.get("metadata", {}).clear() if isinstance(o.get("metadata"), dict) else None
    return json.dumps(o, sort_keys=True)

def clean(outputs):
    out = []
    for o in outputs:
        if o.get("output_type") == "stream":
            if o.get("name") == "stderr": continue
            lines = [l for l in "".join(o["text"]).splitlines(keepends=True) if not NOISE.match(l.rstrip("\n"))]
            if not "".join(lines).strip(): continue
            o = {**o, "text": lines}
        if o.get("output_type") in ("execute_result", "display_data"):
            data = {k: v for k, v in o["data"].items() if k in ("text/plain", "text/html", "text/markdown", "image/png")}
            if "text/html" in data and "plotly" in "".join(data["text/html"]).lower(): continue
            if sum(len("".join(v)) for v in data.values()) > MAX_IMG: continue
            o = {**o, "data": data}
        if o.get("output_type") == "error": return None            # should not happen after a passing nbdev-test
        if MACHINE.search(json.dumps(o)): continue                  # this machine's paths: not the reader's
        size = len(json.dumps(o))
        if o.get("output_type") == "stream" and size > MAX_TEXT: continue
        out.append(o)
    return out

kept = dropped = 0
for pa in sorted(A.glob("*.ipynb")):
    pb, pd = B / pa.name, DEST / pa.name
    na, nb_, nd = (json.loads(p.read_text()) for p in (pa, pb, pd))
    ca, cb = [c for c in na["cells"]], [c for c in nb_["cells"]]
    assert [c["id"] for c in ca] == [c["id"] for c in nd["cells"]] == [c["id"] for c in cb], pa.name
    for x, y, d in zip(ca, cb, nd["cells"]):
        if d["cell_type"] != "code": continue
        ox, oy = clean(x.get("outputs", [])), clean(y.get("outputs", []))
        if ox is not None and ox and [norm(o) for o in ox] == [norm(o) for o in oy]:
            d["outputs"] = [{**o, **({"execution_count": None} if "execution_count" in o else {})} for o in ox]; kept += 1
        else:
            d["outputs"] = []; dropped += bool(x.get("outputs"))
    pd.write_text(json.dumps(nd, indent=1, ensure_ascii=False) + "\n")
print(f"kept outputs of {kept} cells, dropped {dropped} (non-deterministic, stderr-only or too large)")
