"""``python -m local.story`` (``make run``): the local end-to-end run of the whole system."""

import sys

from local.story.run import main

sys.exit(main())
