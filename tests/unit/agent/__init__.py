# IPA's modules read their options at import time (qemu_img reads
# [disk_utils]); the agent registers them before it loads extensions, so
# the tests do the same before importing anything of IPA's.
from ironic_python_agent import config  # noqa: F401
