import sys

from mmident_jax.cli import main

sys.exit(main())
