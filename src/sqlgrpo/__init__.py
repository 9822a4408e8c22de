"""sqlgrpo: teach LLMs to reason before writing SQL, trained with GRPO on execution-checked rewards."""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
