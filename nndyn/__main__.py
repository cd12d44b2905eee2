"""`python -m nndyn` is the `nndyn` command."""

import sys

from nndyn.app.cli import main

sys.exit(main())
