"""``python -m local.stack up|down|status`` (``make up`` / ``make down`` / ``make status``)."""

from __future__ import annotations

import sys

from local.stack.services import main

sys.exit(main())
