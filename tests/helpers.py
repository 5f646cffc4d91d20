"Helpers several test modules share (pytest puts tests/ on sys.path: `from helpers import ...`)."
import socket
from also.core import Settings


def settings_in(tmp_path):
    "Settings from a settings.ini written in `tmp_path`: results, caches and Sotopia's store under it, not the user's."
    (tmp_path / "settings.ini").write_text(f"[paths]\nresults = {tmp_path}/results\ncache = {tmp_path}/cache\n"
                                          f"sotopia_store = {tmp_path}/store\n")
    return Settings.load(tmp_path / "settings.ini")


def free_port() -> int:
    "A 127.0.0.1 port the OS just handed out and released: nothing listens on it."
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]
