"""`python -m pipelines.sandbox`: serve the sandbox with the CLI's options."""

import argparse
import logging

from . import add_arguments, run_from_args


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.sandbox", description="Serve the Neuron Calls API sandbox."
    )
    add_arguments(parser)
    logging.basicConfig(level=logging.WARNING)
    return run_from_args(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
