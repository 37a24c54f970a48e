import sys

from model_image.cli import main

sys.exit(main())
