"""`python -m nndyn` is the `nndyn` command."""

import sys

from nndyn.cli import main

sys.exit(main())
