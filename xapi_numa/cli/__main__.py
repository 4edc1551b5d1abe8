"""``python -m xapi_numa.cli``: the ``xapi-numa`` command."""
import sys

from xapi_numa.cli.main import main

sys.exit(main())
