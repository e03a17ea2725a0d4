"""`python -m services.cli`: the `aos` command."""

import sys

from services.cli.main import main

sys.exit(main())
