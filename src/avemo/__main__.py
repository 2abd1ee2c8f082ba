import sys

from avemo.cli import main

sys.exit(main())
