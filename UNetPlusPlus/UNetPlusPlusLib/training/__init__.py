"""Training UNet++ models from Slicer exports and public datasets (``unetpp train``).

Modules, one job each:

- ``dataset``     dataset descriptions (``dataset.json`` or a folder of Slicer exports) and case
                  discovery
- ``cases``       reading one case: channels, label file (.seg.nrrd, labelmap + colour table),
                  label mapping, checks with errors that name the case
- ``preprocess``  the cache: canonical grid at the model spacing + manifest normalisation, exactly
                  as the engine's Predictor does at inference
- ``sampler``     random patches with foreground oversampling
- ``augment``     flips, small rotations, scaling, intensity shift and noise (torch, CPU-friendly)
- ``validation``  sliding-window validation per depth L1..L4 and the ensemble, the pruning rule
- ``distributed`` torchrun / DistributedDataParallel helpers
- ``checkpoint``  safetensors + JSON checkpoints for exact resume (no pickles)
- ``fingerprint`` the dataset fingerprint (sizes, spacings, intensities, label volumes, extents)
- ``planner``     the plan: spacing, tile, width, batch, schedule from fingerprint, device, budget
- ``plan_file``   the form of a run's plan.json, checked before ``--resume`` trusts it
- ``plan_setup``  from command-line options to a plan (overrides, fingerprint, device, resume)
- ``steps``       one training step, bf16/fp32 calibration, the validation-time estimate
- ``split``       the training / validation split by patient
- ``parent_split`` a fine-tune's split against its parent's (by name, patient and content)
- ``case_content`` image and axial-slice prints: a renamed, re-saved, mirrored or slab copy is
                  found
- ``case_patches`` in-plane patch prints: a crop within the slices is found
- ``run_plan``    the plan's part of a run: calibrate and fit, ETA, re-fit to the budget
- ``trainer``     the training loop
- ``package``     the model package's manifest and the training curve
- ``cli``         ``unetpp train`` arguments and entry point

Nothing here imports Slicer or Qt.
"""
