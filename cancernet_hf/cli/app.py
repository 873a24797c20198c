"""`cancernet app --model DIR_OR_REPO_ID`: serve the Space's own app.py locally (one app, two doors).

The Space folder (spaces/cancernet/) is not part of the installed package: it must stay importable on
Hugging Face Spaces without cancernet_hf. The app file is found, in order, in $CANCERNET_SPACE_DIR, next
to the package in a source checkout or editable install (<repo>/spaces/cancernet/app.py), then under the
current directory; it is loaded as the module `cancernet_space_app`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from ..constants import ENV_MODEL, ENV_SPACE_DIR
from ..errors import UnknownModelError

SPACE_SUBDIR = Path("spaces") / "cancernet"
SPACE_MODULE = "cancernet_space_app"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("app", help="serve the Gradio demo app (the Space) for an ensemble")
    p.add_argument(
        "--model",
        default=os.environ.get(ENV_MODEL),
        help=f"ensemble folder or Hub id (default: ${ENV_MODEL}), e.g. runs/demo/ensemble",
    )
    p.add_argument("--revision", default=None, help="Hub commit to pin (the ensemble runs remote code)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 exposes it to the network")
    p.add_argument("--port", type=int, default=None, help="port (default 7860, or the next free one)")
    p.set_defaults(func=_run)


def space_app_path() -> Path:
    """Where spaces/cancernet/app.py is; FileNotFoundError (with the places tried) when nowhere."""
    candidates = []
    if os.environ.get(ENV_SPACE_DIR):
        candidates.append(Path(os.environ[ENV_SPACE_DIR]) / "app.py")
    candidates.append(Path(__file__).resolve().parents[2] / SPACE_SUBDIR / "app.py")
    candidates.append(Path.cwd() / SPACE_SUBDIR / "app.py")
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(
        f"the Space app (spaces/cancernet/app.py) was not found; tried {tried}. It ships with the source "
        f"repository, not the wheel: run from a checkout (pip install -e .) or set {ENV_SPACE_DIR} to its folder."
    )


def load_space_app(path: Path | None = None) -> ModuleType:
    """Import the Space's app.py as a module (once), with its folder on sys.path for its siblings."""
    if SPACE_MODULE in sys.modules:
        return sys.modules[SPACE_MODULE]
    path = path or space_app_path()
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(SPACE_MODULE, path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"cannot import the Space app from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[SPACE_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[SPACE_MODULE]
        raise
    return module


def _run(args: argparse.Namespace) -> int:
    if not args.model:
        raise UnknownModelError(
            f"no model given: pass --model DIR_OR_REPO_ID (e.g. runs/demo/ensemble after `make demo`) or set "
            f"{ENV_MODEL}."
        )
    looks_like_path = args.model.startswith((".", "/", "~")) or args.model.count("/") > 1  # Hub ids: org/name
    if looks_like_path and not Path(args.model).expanduser().exists():
        raise FileNotFoundError(
            f"model folder {args.model} does not exist; run `make demo` (it writes runs/demo/ensemble) or pass a "
            "Hub id such as org/cancernet-ensemble."
        )
    space = load_space_app()
    print(f"Loading {args.model} (the app's URL follows; Ctrl+C stops it)", flush=True)
    try:
        space.serve(args.model, revision=args.revision, host=args.host, port=args.port)
    except space.ModelLoadError as e:
        raise UnknownModelError(str(e)) from e
    except OSError as e:  # port taken, address not available
        print(f"cancernet app: error: cannot serve on {args.host}:{args.port or 7860}: {e}", file=sys.stderr)
        return 2
    return 0
