"""``python -m streamcore``: the same as the ``streamcore`` command."""

import sys

from streamcore.cli import main

sys.exit(main())
