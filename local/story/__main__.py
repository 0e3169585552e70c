"""``python -m local.story`` (``make run``): the local end-to-end run of the whole system."""

from __future__ import annotations

import sys

from local.story.cli import main

sys.exit(main())
