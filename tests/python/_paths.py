"""Make models/python importable from the tests and locate the repository and the shared data."""
import os
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MODELS_PY = os.path.join(REPO, "models", "python")
if MODELS_PY not in sys.path:
    sys.path.insert(0, MODELS_PY)
DATA_ROOT = os.environ.get("RSI_DATA_ROOT", os.path.join(os.path.dirname(REPO), "shared", "data"))
MODELS_DIR = os.path.join(REPO, "data", "models")
