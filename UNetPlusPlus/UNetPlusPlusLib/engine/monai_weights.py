"""Load MONAI ``BasicUNetPlusPlus`` (3D, ``upsample="deconv"``) weights into ``UNetPlusPlus3D``.

Our network mirrors MONAI's layer structure, so the mapping is a renaming:

=============================================  ===============================
MONAI                                          ours
=============================================  ===============================
``conv_0_0.conv_k.conv.*``                     ``conv_0_0.conv_k.conv.*``
``conv_i_0.convs.conv_k.conv.*`` (i >= 1)      ``conv_i_0.conv_k.conv.*``
``upcat_i_j.convs.conv_k.conv.*``              ``conv_i_j.conv_k.conv.*``
``upcat_i_j.upsample.deconv.*``                ``conv_i_j.up.*``
``... .adn.N.*`` (norm weights, statistics)    ``... .norm.*``
``final_conv_0_j.*``                           ``final_conv_0_j.*``
=============================================  ===============================
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor, nn

from ..errors import UNetPlusPlusError

_BLOCK = r"conv_(?P<k>[01])\.(?P<part>conv|adn\.N)\.(?P<param>\w+)"
_RULES = [
    re.compile(rf"^conv_0_0\.{_BLOCK}$"),
    re.compile(rf"^conv_(?P<i>[1-4])_0\.convs\.{_BLOCK}$"),
    re.compile(rf"^upcat_(?P<i>[0-3])_(?P<j>[1-4])\.convs\.{_BLOCK}$"),
]
_UP = re.compile(r"^upcat_(?P<i>[0-3])_(?P<j>[1-4])\.upsample\.deconv\.(?P<param>weight|bias)$")
_HEAD = re.compile(r"^final_conv_0_[1-4]\.(weight|bias)$")


def _our_name(key: str) -> str | None:
    if _HEAD.match(key):
        return key
    match = _UP.match(key)
    if match:
        return f"conv_{match['i']}_{match['j']}.up.{match['param']}"
    for rule in _RULES:
        match = rule.match(key)
        if match:
            groups = match.groupdict()
            node = f"conv_{groups.get('i') or 0}_{groups.get('j') or 0}"
            part = "conv" if match["part"] == "conv" else "norm"
            return f"{node}.conv_{match['k']}.{part}.{match['param']}"
    return None


def _strip_wrapper_prefix(state_dict: Mapping[str, Any]) -> Mapping[str, Any]:
    """Drop a ``module.`` prefix that DataParallel/DDP checkpoints put on every key."""
    if state_dict and all(key.startswith("module.") for key in state_dict):
        return {key[len("module.") :]: value for key, value in state_dict.items()}
    return state_dict


def monai_state_dict_to_ours(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename every key of a MONAI ``BasicUNetPlusPlus`` state dict to ours; strict."""
    state_dict = _strip_wrapper_prefix(state_dict)
    renamed: dict[str, Tensor] = {}
    unknown = []
    for key, value in state_dict.items():
        name = _our_name(key)
        if name is None:
            unknown.append(key)
        else:
            renamed[name] = value
    if unknown:
        raise UNetPlusPlusError(
            f"The MONAI checkpoint has keys that are not part of a 3D BasicUNetPlusPlus with "
            f"deconv upsampling: {unknown[:5]}{' ...' if len(unknown) > 5 else ''}."
        )
    return renamed


def network_config_from_monai(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    """Our ``config()`` (in/out channels, features, norm) read off a MONAI state dict's shapes."""
    sd = _strip_wrapper_prefix(state_dict)
    try:
        first = sd["conv_0_0.conv_0.conv.weight"]
        features = [first.shape[0]]
        features += [sd[f"conv_{i}_0.convs.conv_0.conv.weight"].shape[0] for i in range(1, 5)]
        features.append(sd["upcat_0_4.convs.conv_1.conv.weight"].shape[0])
        out_channels = sd["final_conv_0_1.weight"].shape[0]
    except KeyError as error:
        raise UNetPlusPlusError(
            f"The MONAI checkpoint lacks {error}; is it a 3D BasicUNetPlusPlus state dict?"
        ) from error
    if "conv_0_0.conv_0.adn.N.running_mean" in sd:
        norm = "batch"
    elif "conv_0_0.conv_0.adn.N.weight" in sd:
        norm = "instance"
    else:
        norm = "none"  # also an instance norm without affine parameters: not distinguishable
    return {
        "in_channels": int(first.shape[1]),
        "out_channels": int(out_channels),
        "features": [int(f) for f in features],
        "norm": norm,
        "dropout": 0.0,
    }


def load_monai_weights(model: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Copy MONAI ``BasicUNetPlusPlus`` weights into ``model`` (every key used, none missing)."""
    renamed = monai_state_dict_to_ours(state_dict)
    try:
        model.load_state_dict(renamed, strict=True)
    except RuntimeError as error:
        summary = str(error).splitlines()[0]
        raise UNetPlusPlusError(
            f"The MONAI weights do not fit this network (check features, channels and norm): "
            f"{summary}"
        ) from error
