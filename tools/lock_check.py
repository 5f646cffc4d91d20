"""Compare the running environment with requirements.lock (the packages tools/setup.sh installs).

python tools/lock_check.py check          # exit 1 and list the differences unless every locked version is installed and nothing else
python tools/lock_check.py extras         # print the installed packages the lock does not list (setup.sh uninstalls them)
python tools/lock_check.py torch          # pip's arguments that install the locked torch (nothing when it is installed)
python tools/lock_check.py torch-source   # where the locked torch comes from: --find-links DIR or --index-url URL (lock.sh)

torch is locked as PyTorch's CPU build (`torch==X+cpu`), which PyPI does not serve (PyPI's Linux torch is the CUDA
build, several GB). It comes from a local wheel folder when one that pip is told about holds it (pip's find-links:
`pip config list`, $PIP_FIND_LINKS, or $ALSO_WHEELS), else from PyTorch's CPU index, TORCH_CPU_INDEX.
"""
import os, re, subprocess, sys
from importlib import metadata
from pathlib import Path

LOCK = Path(__file__).resolve().parents[1]/"requirements.lock"
UNLOCKED = {"also", "pip"}          # the project itself (editable) and the installer
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"   # PyTorch's index of its CPU-only (+cpu) wheels


def norm(name:str) -> str: return re.sub(r"[-_.]+", "-", name).lower()


def locked(path:Path=LOCK) -> dict:
    "{normalized name: exact version} of the lock."
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"): continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;]+)", line)
        if not m: raise SystemExit(f"{path}: not an exact pin: {line!r}")
        out[norm(m[1])] = m[2]
    return out


def installed() -> dict:
    "{normalized name: version} of the running environment."
    return {norm(d.metadata["Name"]): d.version for d in metadata.distributions()}


def differences(lock:dict, env:dict) -> list[str]:
    "What differs, one line each (empty: the environment is exactly the lock)."
    out = [f"{n}: locked {v}, installed {env.get(n, 'nothing')}" for n, v in sorted(lock.items()) if env.get(n) != v]
    return out + [f"{n}: installed {v}, not in the lock" for n, v in sorted(env.items()) if n not in lock and n not in UNLOCKED]


def pip_find_links(environ:dict|None=None) -> list[str]:
    "The wheel folders pip is told about: $ALSO_WHEELS first, then every find-links of `pip config list` (files and $PIP_FIND_LINKS)."
    environ = dict(os.environ if environ is None else environ)
    out = environ.get("ALSO_WHEELS", "").split()
    try: conf = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, env=environ).stdout
    except OSError: conf = ""
    for line in conf.splitlines():                         # e.g. global.find-links='/opt/wheels'  or  :env:.find-links='/a /b'
        key, _, val = line.partition("=")
        if key.strip().endswith(".find-links"): out += val.strip().strip("'\"").split()
    return list(dict.fromkeys(out))


def torch_source(version:str,          # the locked torch version, e.g. "2.13.0+cpu"
                 folders:list,         # candidate wheel folders (pip_find_links()); URLs and missing paths are skipped
                 python:str|None=None, # CPython tag of the wheel, e.g. "cp311" (default: this interpreter's)
                ) -> list[str]:
    "pip's arguments for where the locked torch comes from: the first folder holding its wheel, else PyTorch's CPU index."
    tag = python or f"cp{sys.version_info.major}{sys.version_info.minor}"
    for f in folders:
        p = Path(f.removeprefix("file://"))
        if p.is_dir() and any(p.glob(f"torch-{version}-{tag}-*.whl")): return ["--find-links", str(p)]
    return ["--index-url", TORCH_CPU_INDEX]


def torch_install_args(lock:dict, env:dict, folders:list) -> list[str]:
    "pip's arguments that install the locked torch from its source (`torch_source`); none when it is installed already."
    if env.get("torch") == lock["torch"]: return []
    return torch_source(lock["torch"], folders) + [f"torch=={lock['torch']}"]


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "check"
    lock, env = locked(), installed()
    if cmd == "extras": print(" ".join(n for n in sorted(env) if n not in lock and n not in UNLOCKED))
    elif cmd == "torch-source": print(" ".join(torch_source(lock["torch"], pip_find_links())))
    elif cmd == "torch": print(" ".join(torch_install_args(lock, env, pip_find_links())))
    elif cmd == "check":
        if diff := differences(lock, env):
            print("the environment differs from requirements.lock:\n  " + "\n  ".join(diff), file=sys.stderr); sys.exit(1)
        print(f"environment = requirements.lock ({len(lock)} packages)")
    else: raise SystemExit(__doc__)
