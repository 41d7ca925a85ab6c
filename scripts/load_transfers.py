#!/usr/bin/env python3
"""Run N scripted transfers at once against the real stack and print what happened.

    .venv/bin/python scripts/load_transfers.py --transfers 500   (needs Redis: run under scripts/with-redis)
"""

import argparse
import os
import sys

from baton.operator.loadtest import run_load
from simulator.profiles import PROFILES


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transfers", type=int, default=500)
    parser.add_argument("--copies", type=int, default=2, help="how many times every webhook is delivered")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fault-rate", type=float, default=0.0,
                        help="share of Twilio requests that fail (429, 500, 503, dropped connections)")
    parser.add_argument("--profile", choices=tuple(PROFILES), default="documented",
                        help="the simulator's reading of Twilio's ambiguous behaviours (docs/twilio-behaviour.md)")
    args = parser.parse_args()
    result = run_load(args.transfers, os.environ.get("REDIS_URL", "redis://localhost:6379/0"), seed=args.seed,
                      copies=args.copies, fault_rate=args.fault_rate, profile=args.profile)
    print(result.report())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
