"""Do a package's weights fit the network its manifest describes, and are they finite?

The sha256 in ``model.json`` only says that the weights are the ones the manifest names, not
that they belong to that network: a package whose ``weights.safetensors`` gained, lost or
reshaped a tensor (and whose sha256 was recomputed) installed, replacing a working model of the
same name, and only ``unetpp segment`` then failed; a NaN in one weight installed and segmented
an empty result with "Nothing (liver) was found" (tester 12). Both are refused here, at install
and when a model is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Optional

from UNetPlusPlusLib.engine.manifest_model import ModelManifest
from UNetPlusPlusLib.errors import UNetPlusPlusError

if TYPE_CHECKING:
    import torch

#: Tensor names listed in a message before "and N more".
SHOWN = 3


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def fit_problems(
    expected: Mapping[str, tuple[tuple[int, ...], bool]],
    found: Mapping[str, tuple[tuple[int, ...], bool, str]],
) -> list[str]:
    """What keeps tensors ``found`` (name -> (shape, floating, dtype name)) from loading into
    a network of tensors ``expected`` (name -> (shape, floating)): missing, unexpected,
    mis-shaped, or integer where the network has floats (each naming the first few); [] when
    they fit. No torch: ``models list`` gives it a safetensors header's entries."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    common = set(expected) & set(found)
    misshaped = sorted(k for k in common if tuple(found[k][0]) != tuple(expected[k][0]))
    # floats stored as integers load (load_state_dict casts) and segment nothing (tester 13)
    mistyped = sorted(k for k in common if expected[k][1] and not found[k][1])
    problems = []
    if missing:
        problems.append(f"missing tensor(s) {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected tensor(s) {_listed(unexpected)}")
    if misshaped:
        k = misshaped[0]
        problems.append(
            f"tensor(s) of another shape {_listed(misshaped)} ({k}: "
            f"{list(found[k][0])} in the weights, {list(expected[k][0])} in the network)"
        )
    if mistyped:
        problems.append(
            f"tensor(s) of an integer type where the network has floats {_listed(mistyped)} "
            f"({mistyped[0]}: {found[mistyped[0]][2]})"
        )
    return problems


def check_weights_fit(
    manifest: ModelManifest,
    tensors: Mapping[str, torch.Tensor],
    network: Optional[torch.nn.Module] = None,
) -> None:
    """Refuse ``tensors`` (a state dict read from ``manifest``'s weights) unless they have
    exactly the names and shapes of ``network`` (default: ``UNetPlusPlus3D.from_config(
    manifest.network)``, built without memory), floating where the network's are, and every
    floating value is finite. Raises UNetPlusPlusError naming the missing, unexpected,
    mis-shaped or integer tensors, convolution kernels of zeros only, or the first tensor
    holding NaN or infinity."""
    import torch

    if network is None:
        from UNetPlusPlusLib.engine.network import UNetPlusPlus3D

        with torch.device("meta"):  # names and shapes only: no memory for the parameters
            network = UNetPlusPlus3D.from_config(manifest.network)
    state = network.state_dict()
    expected = {k: (tuple(v.shape), v.is_floating_point()) for k, v in state.items()}
    found = {k: (tuple(v.shape), v.is_floating_point(), str(v.dtype)) for k, v in tensors.items()}
    problems = fit_problems(expected, found)
    if problems:
        raise UNetPlusPlusError(
            f"The weights in {manifest.weights_path} do not fit the network described in "
            f"{manifest.path}: {'; '.join(problems)}. Reinstall or retrain the model."
        )
    # a kernel of zeros outputs a constant: never the result of training (tester 13: all-zero
    # weights installed and loaded); trained kernels of the shipped models have none
    zeroed = sorted(
        k for k, v in tensors.items() if v.is_floating_point() and v.dim() == 5 and not v.any()
    )
    if zeroed:
        raise UNetPlusPlusError(
            f"The weights in {manifest.weights_path} hold only zeros in convolution kernel(s) "
            f"{_listed(zeroed)}: the model is untrained or damaged and would segment nothing. "
            "Reinstall or retrain it."
        )
    for name in sorted(tensors):
        tensor = tensors[name]
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UNetPlusPlusError(
                f"The weights in {manifest.weights_path} hold NaN or infinite values (tensor "
                f"{name}): the model is damaged and would segment nothing. Reinstall or retrain "
                "it."
            )
