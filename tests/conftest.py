"Shared pytest set-up: sotopia's local backend and litellm's local cost map before anything imports them."
import os, sys
from pathlib import Path

os.environ.setdefault("SOTOPIA_STORAGE_BACKEND", "local")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("PYTHONHASHSEED", "0")
ROOT = Path(__file__).resolve().parents[1]
