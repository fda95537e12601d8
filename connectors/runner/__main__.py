"""``python -m connectors.runner``."""

import sys

from connectors.runner.main import main

sys.exit(main())
