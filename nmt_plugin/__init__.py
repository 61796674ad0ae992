"""lskd's fairseq plugin (``fairseq-train --user-dir nmt_plugin``): the ``kd_translation`` task
and the ``ls_kd`` criterion. fairseq's plugin convention: importing the package registers both."""
from . import kd_translation, ls_kd  # noqa: F401  (registration happens on import)
