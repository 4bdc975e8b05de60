"""Run the stand-in under uvicorn on loopback: `python -m threadline_testing.openai --port 8099`."""

from __future__ import annotations

import argparse
import dataclasses

import uvicorn

from threadline_testing.openai.app import create_app
from threadline_testing.openai.config import StandinConfig

LOOPBACK = "127.0.0.1"  # the stand-in is a test double: never listen on public interfaces


def main(argv: list[str] | None = None) -> None:
    """Parse flags named after `StandinConfig` fields (e.g. --requests-per-minute 600)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    for field in dataclasses.fields(StandinConfig):
        flag = "--" + field.name.replace("_", "-")
        parser.add_argument(flag, type=type(field.default), default=field.default)
    args = vars(parser.parse_args(argv))
    port = args.pop("port")
    config = StandinConfig(**args)
    uvicorn.run(create_app(config), host=LOOPBACK, port=port, log_level="warning")


if __name__ == "__main__":
    main()
