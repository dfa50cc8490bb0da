"""``python -m ipytwist.kernel``: the kernelspec's command; composed in ``ipytwist.standalone``
(an entry point, outside the rooms' layering)."""

import sys

from ipytwist.standalone import main

sys.exit(main())
