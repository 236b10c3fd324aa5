import os
import tempfile

# No network at run time: the hub must fail at once, and figures render off-screen.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")
# The whole-file digest memo (factortopy._digest) goes to a private folder, never the user's ~/.cache.
os.environ.setdefault("FACTORTOPY_CACHE_DIR", tempfile.mkdtemp(prefix="factortopy-test-cache-"))
