"""Allow ``python -m monogres_oci``."""

from monogres_oci.cli import main

raise SystemExit(main())
