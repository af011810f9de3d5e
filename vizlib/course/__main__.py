"""The course's commands:

    python -m vizlib.course get DEST [--overwrite]   write the numbered notebooks into DEST
"""

import argparse
import sys

from vizlib.course import notebooks


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m vizlib.course", description="the course's commands")
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("get", help=notebooks.__doc__.splitlines()[0])
    get.add_argument("dest", help="folder to write the notebooks into (created if missing)")
    get.add_argument("--overwrite", action="store_true",
                     help="replace notebooks already there (edits to them are lost)")
    args = parser.parse_args(argv)
    try:
        written, kept = notebooks.get(args.dest, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"error: {error}\n")
    print(f"{len(written)} notebooks written to {args.dest}", end="")
    print(f"; {len(kept)} already there and kept (--overwrite replaces them)" if kept else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
