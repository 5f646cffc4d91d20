"ALSO: adversarial online strategy optimization for LLM social agents (a literate, reproducible implementation)."
import os as _os

# Before anything can import them: sotopia picks its storage backend at first import (default Redis),
# litellm fetches its price map from the network at import, and the hub libraries must never download.
for _k, _v in {"SOTOPIA_STORAGE_BACKEND": "local", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}.items():
    _os.environ.setdefault(_k, _v)

__version__ = "0.0.1"
