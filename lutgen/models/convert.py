"""Convert the published AdaInt checkpoints into the safetensors files lutgen ships.

Run once from the project root, naming a folder holding the published ``.pth`` checkpoints (they
are not needed at run time)::

    python -m lutgen.models.convert FOLDER

It reads ``AiLUT-FiveK-sRGB.pth`` and ``AiLUT-FiveK-XYZ.pth`` with ``torch.load(weights_only=True)``,
checks every tensor name and shape against the architecture (:func:`lutgen.models.check_tensors`) and
the parameter count (619,724), and writes the same tensors, unchanged (float32, same names, same
layouts), to ``lutgen/models/weights/fivek_srgb.safetensors`` and ``fivek_xyz.safetensors`` with their
provenance in the safetensors metadata.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from lutgen.errors import LutgenError
from lutgen.fileio import atomic_path
from lutgen.models import WEIGHTS_DIR, check_tensors

SOURCE_REPOSITORY = "https://github.com/ImCharlesY/AdaInt"
SOURCE_COMMIT = "5678851339dff90becb09c3dec41e7214207ccbc"
PUBLISHED_PARAMETERS = 619_724
CHECKPOINTS = {
    "AiLUT-FiveK-sRGB.pth": (
        "fivek_srgb.safetensors",
        "MIT-Adobe FiveK expert C photo retouching, 8-bit sRGB input at 480p",
    ),
    "AiLUT-FiveK-XYZ.pth": (
        "fivek_xyz.safetensors",
        "MIT-Adobe FiveK expert C tone mapping, 16-bit CIE XYZ input at 480p",
    ),
}


def convert(checkpoint: Path, target: Path, task: str) -> int:
    """Write the tensors of ``checkpoint`` to ``target`` (safetensors); returns the parameter count."""
    import torch
    from safetensors.torch import save_file

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    tensors = {key: value.detach().to(torch.float32).contiguous() for key, value in state.items()}
    config = check_tensors({key: value.numpy() for key, value in tensors.items()}, checkpoint)
    count = sum(value.numel() for value in tensors.values())
    if count != PUBLISHED_PARAMETERS:
        raise LutgenError(f"{checkpoint} has {count} parameters, not the published {PUBLISHED_PARAMETERS}")
    metadata = {
        "format": "lutgen-adaint-1",
        "architecture": f"AiLUT tpami backbone, n_vertices={config.n_vertices}, n_ranks={config.n_ranks}, "
        f"adaint={config.adaptive}",
        "task": task,
        "source": f"{SOURCE_REPOSITORY} pretrained/{checkpoint.name} at commit {SOURCE_COMMIT}",
        "source_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
        "license": "Apache-2.0 (see LICENSE beside this file)",
        "conversion": "tensors copied unchanged (float32, published names and layouts) by lutgen.models.convert",
    }
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        tmp.chmod(0o644)  # a file of the package, readable by everyone
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder holding the published .pth checkpoints")
    parser.add_argument("--output-dir", type=Path, default=WEIGHTS_DIR)
    args = parser.parse_args(argv)
    for name, (target_name, task) in CHECKPOINTS.items():
        count = convert(args.folder / name, args.output_dir / target_name, task)
        print(f"{args.folder / name} -> {args.output_dir / target_name} ({count:,} parameters)")


if __name__ == "__main__":
    main()
