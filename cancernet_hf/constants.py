"""File names, fixed run locations and environment flags, read in one place.

Explicit function arguments always override what is read here.
"""

from __future__ import annotations

import os
from pathlib import Path

# Files every stage reads or writes.
SPLIT_FILE = "split.json"
METRICS_FILE = "metrics.json"
ENSEMBLE_META_FILE = "cancernet.json"
RUN_CONFIG_FILE = "run_config.json"
SCAN_REPORT_FILE = "scan_report.json"
SYNTH_MANIFEST_FILE = ".cancernet_synth.json"  # hidden: the scanner ignores it

# Split names, in the order they are reported.
SPLITS = ("train", "validation", "test")
SPLIT_PROTOCOLS = ("group", "random")

# Fixed places of the demo, so people and scripts can find them.
DEMO_DATA_DIR = Path("data/demo")
DEMO_RUN_DIR = Path("runs/demo")
MEMBERS_SUBDIR = "members"
ENSEMBLE_SUBDIR = "ensemble"
REPORTS_SUBDIR = "reports"
HUB_SUBDIR = "hub"
DEMO_MEMBERS = ("vit-tiny", "convnext-tiny", "swin-tiny")

# Image files.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
IGNORED_FILE_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", "Icon\r"})
# Decompression bombs are refused before decoding; 1x1 thumbnails are useless for a classifier.
MAX_IMAGE_PIXELS = 40_000_000
MIN_IMAGE_SIDE = 16

# The ensemble's own pipeline task (never the stock "image-classification").
PIPELINE_TASK = "cancer-image-classification"

# The notice printed beside every number produced on the generated demo data.
DEMO_DATA_NOTICE = "SYNTHETIC DEMO DATA: these figures prove the machinery, not medical performance."

# Environment.
ENV_MODEL = "CANCERNET_MODEL"  # the Space reads its model id or path here
ENV_CACHE = "CANCERNET_CACHE"  # where perceptual hashes are cached


def cache_dir() -> Path:
    """Where derived, recomputable data (perceptual hashes) is cached; never next to the data."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cancernet_hf"
    return Path(os.environ.get(ENV_CACHE, default))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


# Folders of OS/zip litter that the scanner skips silently (like hidden ones).
IGNORED_DIR_NAMES = frozenset({"__MACOSX", "$RECYCLE.BIN", "System Volume Information", "@eaDir"})
ENV_SPACE_DIR = "CANCERNET_SPACE_DIR"  # folder holding the Space app.py when not in a repo checkout
ENV_MODEL_REVISION = (
    "CANCERNET_MODEL_REVISION"  # the Space pins the model (and its remote code) to this commit
)
