"""``python -m hwsearch`` (also under ``torchrun ... -m hwsearch optimize``)."""
import sys

from hwsearch.cli import main

sys.exit(main())
