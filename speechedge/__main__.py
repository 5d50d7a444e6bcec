import sys

from speechedge.apps.cli import main

sys.exit(main())
