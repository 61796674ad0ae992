"""lskd's fairseq plugin (``fairseq-train --user-dir nmt_plugin``): the ``kd_translation`` task
and the ``ls_kd`` criterion. fairseq's plugin convention: importing the package registers both.

fairseq imports a ``--user-dir`` by its folder's base name and refuses ("not globally unique") a
folder whose name is already imported from another place. A process that has imported this package
and then parses fairseq arguments must therefore pass ``--user-dir PLUGIN_DIR`` (this copy's folder),
not the path of another copy, e.g. the repository's when an installed copy was imported first."""

import os

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))

from . import kd_translation, ls_kd  # noqa: F401,E402  (registration happens on import)
