"""`python -m tests.fakearena --port N [--host H] [--scenario FILE]`."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from tests.fakearena import Scenario, create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakearena", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--scenario", type=Path, help="JSON file with scenario knobs")
    args = parser.parse_args(argv)
    scenario = (
        Scenario.model_validate_json(args.scenario.read_bytes()) if args.scenario else Scenario()
    )
    uvicorn.run(create_app(scenario), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
