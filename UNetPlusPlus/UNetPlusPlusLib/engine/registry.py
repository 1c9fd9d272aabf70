"""Where models live and how they get there: the public import path of the model registry.

Re-exports the names of four modules, each with one job (imports go one way: install and
remove use search, install uses download, nothing imports back):

- ``model_search``: the folders searched (``UNETPP_MODELS``, the user cache under
  ``UNETPP_HOME``, the built-in models), listing and finding a model by name or task;
- ``model_download``: streaming a file over http(s), bounded and with stall detection;
- ``model_install``: installing a package from a folder, ``model.json``, ``.zip`` or URL into
  the user cache, checked before it lands there;
- ``model_remove``: removing an installed package from the user cache, with its graph cache.
"""

from __future__ import annotations

from UNetPlusPlusLib.engine.model_download import (
    DOWNLOAD_TIMEOUT_S,
    MAX_DOWNLOAD_BYTES,
    MIN_BYTES_PER_TIMEOUT,
    Progress,
)
from UNetPlusPlusLib.engine.model_install import (
    MAX_MANIFEST_BYTES,
    MAX_UNPACKED_BYTES,
    TRAINING_STATE,
    PathLike,
    install_model,
)
from UNetPlusPlusLib.engine.model_remove import RemovedModel, remove_model
from UNetPlusPlusLib.engine.model_search import (
    builtin_names,
    find_model,
    fine_tuned_from,
    graphs_dir,
    list_models,
    listed_models,
    model_dirs,
    searched_dirs,
    shadow_notice,
    shadowed_models,
    user_cache_dir,
)

__all__ = [
    "DOWNLOAD_TIMEOUT_S",
    "MAX_DOWNLOAD_BYTES",
    "MAX_MANIFEST_BYTES",
    "MAX_UNPACKED_BYTES",
    "MIN_BYTES_PER_TIMEOUT",
    "TRAINING_STATE",
    "PathLike",
    "Progress",
    "RemovedModel",
    "builtin_names",
    "find_model",
    "fine_tuned_from",
    "graphs_dir",
    "install_model",
    "list_models",
    "listed_models",
    "model_dirs",
    "remove_model",
    "searched_dirs",
    "shadow_notice",
    "shadowed_models",
    "user_cache_dir",
]
