import sys

from genprior.cli import main

sys.exit(main())
