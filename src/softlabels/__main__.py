import sys

from softlabels.cli import main

sys.exit(main())
