"""The ``avemo`` command line: one sub-command per module in :mod:`avemo.commands`.

Each command module imports only argparse at top level (``add_arguments``) and its heavy parts
inside ``run``, so ``avemo --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

from avemo.errors import AvemoError

#: command name -> module in avemo.commands with ``HELP``, ``add_arguments(p)``, ``run(args) -> int``
COMMANDS: dict[str, str] = {
    "train": "train",
    "evaluate": "evaluate",
    "bench": "bench",
    "live": "live",
    "analyze": "analyze",
    "batch": "batch",
    "score": "score",
    "demo": "demo",
    "inspect": "inspect_media",
    "export": "export",
    "serve": "serve",
    "robustness": "robustness",
}


def build_parser() -> argparse.ArgumentParser:
    """The full parser, every sub-command included."""
    parser = argparse.ArgumentParser(prog="avemo", description="Audio-visual emotion recognition.")
    parser.add_argument("--verbose", action="store_true",
                        help="show third-party libraries' start-up logs (else kept in $AVEMO_CACHE/logs/native.log)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"avemo.commands.{module_name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``avemo`` script; library errors print one clear line, exit code 2."""
    args = build_parser().parse_args(argv)
    if args.verbose:
        import os

        os.environ["AVEMO_VERBOSE"] = "1"
    try:
        return int(args._run(args) or 0)
    except AvemoError as exc:
        print(f"avemo {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "torch":
            raise
        print(f"avemo {args.command}: error: this command needs PyTorch, which this install lacks (analysing needs "
              "none): pip install 'avemo[train]' (for the CPU build first: pip install torch==2.13.0 --index-url "
              "https://download.pytorch.org/whl/cpu)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` without the interpreter's teardown of every loaded module (about 0.2 s of a
    command-line run with the models loaded): the streams are flushed and the ``atexit`` handlers run (logging,
    temporary folders, Ray), then the process exits. Where another thread still runs, a normal exit instead (which
    waits for it), but for an interrupted command (130): Ctrl-C means now, and what was finished is written."""
    import atexit
    import os
    import threading

    if threading.active_count() > 1 and code != 130:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (``| head``) or stream
            pass
    atexit._run_exitfuncs()
    os._exit(code)


def run() -> NoReturn:
    """The ``avemo`` console script: :func:`main`, then :func:`exit_now`."""
    exit_now(main())


if __name__ == "__main__":
    run()
