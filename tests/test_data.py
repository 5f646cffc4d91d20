"The shipped Sotopia data: counts, references, splits, errors, and the `also data` command."
import json, os, shutil, subprocess, sys
from pathlib import Path
import pytest
from also.core import ConfigError, DataError
from also.sotopia.data import load_data, split_combos, shipped_data_dir, install_into_sotopia, SPLITS


@pytest.fixture(scope="module")
def data(): return load_data()


def test_counts(data):
    assert data.counts() == {"environments": 90, "agents": 40, "relationships": 120, "combos": 450, "hard": 14}


def test_every_combo_resolves(data):
    for c in data.combos.values():
        assert c["env_id"] in data.environments
        assert len(c["agent_ids"]) == 2 and all(a in data.agents for a in c["agent_ids"])
    assert all(len(e["agent_goals"]) == 2 and e["scenario"] for e in data.environments.values())


def test_hard_ids_present(data):
    assert len(set(data.hard_env_ids)) == 14 and set(data.hard_env_ids) <= set(data.environments)
    assert "01H7VFHNV13MHN97GAH73E3KM8" in data.hard_env_ids


def test_splits(data):
    sizes = {s: len(split_combos(data, s)) for s in SPLITS}
    assert sizes == {"all": 450, "hard": 70, "hard_small": 14, "non_hard": 380}
    hard = set(data.hard_env_ids)
    assert all(data.combos[c]["env_id"] in hard for c in split_combos(data, "hard"))
    assert not any(data.combos[c]["env_id"] in hard for c in split_combos(data, "non_hard"))
    small = split_combos(data, "hard_small")
    for c in small:  # first combo by pk of its environment
        env = data.combos[c]["env_id"]
        assert c == min(k for k, v in data.combos.items() if v["env_id"] == env)
    assert split_combos(data, "all") == split_combos(data, "all")  # stable order
    with pytest.raises(ConfigError, match="unknown split"): split_combos(data, "nope")


def test_corrupt_and_missing_files(tmp_path):
    d = tmp_path/"d"; shutil.copytree(shipped_data_dir(), d)
    p = d/"environment_profiles.json"; p.write_text(p.read_text().replace("divide_things", "divide_thingz"))
    with pytest.raises(DataError, match="sha256"): load_data(d)
    (d/"hard_env_ids.json").unlink()
    with pytest.raises(DataError, match="missing data file"): load_data(d, verify=False)
    (d/"PROVENANCE.md").unlink()
    with pytest.raises(DataError, match="PROVENANCE.md is missing"): load_data(d)


def test_install_into_local_store(data, tmp_path):
    n = install_into_sotopia(data, tmp_path)
    assert n["EnvAgentComboStorage"] == 450
    from sotopia.database import AgentProfile
    assert len(list((tmp_path/"AgentProfile").glob("*.json"))) == 40
    assert AgentProfile.get(next(iter(data.agents))).first_name


ALSO = str(Path(sys.executable).parent/"also")  # the console script of this environment


def test_cli(tmp_path):
    r = subprocess.run([ALSO, "data", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["splits"] == {"all": 450, "hard": 70, "hard_small": 14, "non_hard": 380}
    bad = tmp_path/"bad"; shutil.copytree(shipped_data_dir(), bad); (bad/"agent_profiles.json").write_text("{")
    r = subprocess.run([ALSO, "data", "--data-dir", str(bad)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "agent_profiles.json" in r.stderr and "Traceback" not in r.stderr


def test_sotopia_never_touches_home(tmp_path):
    "The store goes where settings say, even when sotopia itself is imported afterwards; ~/.sotopia is never made."
    code = ("from also.sotopia.data import sotopia_store; import sys; s = sotopia_store(sys.argv[1]); "
            "import sotopia.server; from sotopia.database.storage_backend import get_storage_backend; "
            "assert get_storage_backend().base_path == s, get_storage_backend().base_path")
    env = {**os.environ, "HOME": str(tmp_path/"home")}
    env.pop("SOTOPIA_STORAGE_BACKEND", None)
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path/"store")], env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path/"home"/".sotopia").exists()
