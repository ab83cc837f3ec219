"""`python -m eventlog.app.cli`."""

import sys

from eventlog.app.cli import main

sys.exit(main())
