"""``sparsecodec backends``: which sparse-convolution backends can run here, and why not."""

from __future__ import annotations

import json


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "backends",
        help="list the sparse-convolution backends and whether each can run here",
        description="List every known sparse-convolution backend with 'ok' or the reason it cannot run.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as a JSON object")
    parser.set_defaults(func=run)


def run(args) -> int:
    from .. import backends

    report = backends.available()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    width = max(len(name) for name in report)
    for name, status in report.items():
        print(f"{name:<{width}}  {status}")
    return 0
