import sys

from enformer.cli import main

sys.exit(main())
