"""``cam-explorer sanity``: the model-randomization check (``cam_core.sanity_check``) per image."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cam_core.sanity import sanity_check

from . import writers
from .commands import Failures, command, each_image, open_model
from .parsing import parse_one_method


@command
def sanity(args: argparse.Namespace) -> int:
    """The model-randomization check per image: ``SanityResult.as_dict()`` plus the image, model and label."""
    method = parse_one_method(args.method, "sanity")
    opened = open_model(args, [method])
    backbone = opened.backbone
    layer = opened.layer_for(method, args.layer)
    out = writers.OutputFolder(args.out) if args.out is not None else None
    failures = Failures(args.debug)

    for path, img, x in each_image(args.images, backbone, failures):
        progress = writers.Progress(f"{Path(path).name} sanity {method} ({args.mode})")
        try:
            result = sanity_check(backbone.model, x, method, opened.fixed_class, target_layer=layer,
                                  mode=args.mode, seed=args.seed, progress=progress,
                                  categories=opened.categories, **opened.params[method])
            record: dict[str, Any] = {"image": path, "model": opened.name, **result.as_dict(),
                                      "class_idx": result.class_idx, "label": opened.label(result.class_idx)}
            if out is not None:
                base = f"{out.stem_for(path)}_{writers.safe_name(method)}_sanity"
                record.update(out.sanity_thumbnails(base, img, result, args.alpha, args.colormap))
                for entry, thumb in zip(record["stages"], record.pop("stage_thumbnails")):
                    entry["thumbnail"] = thumb
            writers.emit(record)
            writers.say(f"{Path(path).name} {result.summary()}")
        except BrokenPipeError:
            raise
        except Exception as exc:
            progress.interrupted()
            failures.report({"image": path, "method": method}, exc)
    return failures.exit_code
