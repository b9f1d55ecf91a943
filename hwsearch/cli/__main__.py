"""``python -m hwsearch.cli`` (same as ``python -m hwsearch``)."""
import sys

from hwsearch.cli import main

sys.exit(main())
