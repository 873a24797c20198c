"""`cancernet` command: parses arguments and calls one library function per sub-command.

Each command group lives in its own small module exposing `register(subparsers)`; heavy
libraries are imported inside the handlers so `cancernet --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from ..errors import CancerNetError

# Command-group modules under cancernet_hf/cli/, each with register(subparsers).
COMMAND_MODULES = ("data", "train", "ensemble", "evaluate", "push", "app", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cancernet",
        description="Train, ensemble, publish and serve cancer image classifiers (Hugging Face native).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except (CancerNetError, FileNotFoundError) as e:
        print(f"cancernet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cancernet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
