"""``python -m mlplatform.versioning [--check]``: regenerate (or check) params.yaml."""

import sys

from mlplatform.versioning.params import main

sys.exit(main())
