"Guard against drift between pyproject.toml, settings.ini, environment.yml and the test command."
import configparser, re, tomllib
from pathlib import Path
import yaml

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


def test_environment_yml_delegates_to_pyproject():
    env = yaml.safe_load((ROOT/"environment.yml").read_text())
    pips = [d for d in env["dependencies"] if isinstance(d, dict)]
    assert pips == [{"pip": ["-e .[dev]"]}], "environment.yml must only delegate to pyproject (no second list)"
    py = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert pyproject()["project"]["requires-python"] == ">=" + py.split("=", 1)[1]


def test_setup_script_pins_match_pyproject():
    "tools/setup.sh installs torch before the rest; its pin must be pyproject's."
    deps = pyproject()["project"]["dependencies"]
    setup = (ROOT/"tools/setup.sh").read_text()
    torch = next(d for d in deps if d.startswith("torch"))
    assert f'"{torch}"' in setup
    assert "-e \".[dev]\"" in setup


def test_ci_runs_the_readme_test_command():
    readme = (ROOT/"README.md").read_text()
    assert "bash tools/test.sh" in readme and "bash tools/test.sh" in (ROOT/".ci/run").read_text()
    assert "bash tools/setup.sh" in readme
