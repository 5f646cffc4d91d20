"""Compare the running environment with requirements.lock (the packages tools/setup.sh installs).

python tools/lock_check.py check    # exit 1 and list the differences unless every locked version is installed and nothing else
python tools/lock_check.py extras   # print the installed packages the lock does not list (setup.sh uninstalls them)
"""
import re, sys
from importlib import metadata
from pathlib import Path

LOCK = Path(__file__).resolve().parents[1]/"requirements.lock"
UNLOCKED = {"also", "pip"}          # the project itself (editable) and the installer


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


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "check"
    lock, env = locked(), installed()
    if cmd == "extras": print(" ".join(n for n in sorted(env) if n not in lock and n not in UNLOCKED))
    elif cmd == "check":
        if diff := differences(lock, env):
            print("the environment differs from requirements.lock:\n  " + "\n  ".join(diff), file=sys.stderr); sys.exit(1)
        print(f"environment = requirements.lock ({len(lock)} packages)")
    else: raise SystemExit(__doc__)
