"""`python -m tocsin.cli`: the `tocsin` command."""

import sys

from tocsin.cli import main

sys.exit(main())
