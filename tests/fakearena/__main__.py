"""`python -m tests.fakearena --port N [--host H] [--scenario FILE] [--site S] [--tls DIR]`."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import get_args

import uvicorn

from tests.fakearena import Scenario, create_app
from tests.fakearena.scenario import Site
from tests.fakearena.tls import serve_tls


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakearena", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--scenario", type=Path, help="JSON file with scenario knobs")
    parser.add_argument(
        "--site", choices=get_args(Site), help="the site to serve (over the scenario file's)"
    )
    parser.add_argument(
        "--tls",
        type=Path,
        metavar="DIR",
        help="serve HTTPS with HTTP/2, as the real site does; the test CA goes to DIR/ca.pem",
    )
    args = parser.parse_args(argv)
    scenario = (
        Scenario.model_validate_json(args.scenario.read_bytes()) if args.scenario else Scenario()
    )
    if args.site:
        scenario = scenario.merged({"site": args.site})
    app = create_app(scenario)
    if args.tls:
        asyncio.run(serve_tls(app, args.host, args.port, args.tls))
    else:
        # The log reports each request's TCP peer: no X-Forwarded-For may stand in for it.
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", proxy_headers=False)


if __name__ == "__main__":
    main()
