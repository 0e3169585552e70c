"""``python -m local.stack up|down|status`` (``make up`` / ``make down`` / ``make status``)."""

import sys

from local.stack.services import main

sys.exit(main())
