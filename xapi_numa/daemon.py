"""Entry point of ``xapi-numad``, the runtime daemon.

The daemon's loop (vCPU homing, affinity fix-up, reservation upkeep) is
tracked as its own piece of work and is not part of this release: the
command says so and exits non-zero rather than pretending to run.
"""
from __future__ import annotations

import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    print("xapi-numad: the runtime daemon is not part of this release yet; "
          "use 'xapi-numa vcpus' to inspect placement", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
