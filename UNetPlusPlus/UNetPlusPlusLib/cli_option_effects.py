"""`unetpp segment` options that would change nothing for the inputs given: refused, one line.

``--lps`` without ``--point`` or ``--roi`` (there is no coordinate to read as LPS) and
``--no-channel-check`` for a model without the sequence-order check (a single-channel CT
model, an MR model without a channel fingerprint) were accepted and ignored in silence, so a
user could believe they had an effect (review cli20). No torch here.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .cli_args import ArgumentError

if TYPE_CHECKING:
    from .engine.manifest import ModelManifest


def refuse_idle_options(args: argparse.Namespace) -> None:
    """Refuse the options that have no effect whatever the model: ``--lps`` without a
    coordinate option. Raises ArgumentError."""
    if args.lps and not (args.point or args.roi is not None):
        raise ArgumentError(
            "argument --lps: it says that --point and --roi are LPS (ITK) millimetres, but "
            "neither is given; leave out --lps, or give --point X Y Z or --roi"
        )


def refuse_idle_model_options(args: argparse.Namespace, manifest: ModelManifest) -> None:
    """Refuse the options that have no effect with ``manifest``'s model: ``--no-channel-check``
    where no sequence-order check runs (:func:`.engine.channel_order.order_check_applies`).
    Raises ArgumentError."""
    from .engine.channel_order import order_check_applies

    if not getattr(args, "channel_check", True) and not order_check_applies(manifest):
        inputs = ", ".join(channel.name for channel in manifest.channels)
        raise ArgumentError(
            f"argument --no-channel-check: model '{manifest.name}' ({inputs}) has no "
            "sequence-order check to skip (only multi-channel MR models with a channel "
            "fingerprint have one); leave out --no-channel-check"
        )
